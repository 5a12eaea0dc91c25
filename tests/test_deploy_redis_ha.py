"""The Sentinel and Cluster deployment examples (deploy/compose/sentinel.yml and cluster.yml over
docker-compose.yml; deploy/k8s/redis-sentinel/ and redis-cluster/): parsed and checked against the main files and
ZipLine's settings, then run without Docker or Kubernetes. Their Redis, sentinel and cluster-creation commands
start as they are written, with the service names rewritten to 127.0.0.1 and their ports to free ones (never the
shared Redis), and ZipLine, given the files' settings so rewritten, finds the master or spreads its queues over
the cluster's masters.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.procs import free_port, manage
from tests.redis_cluster import cluster_ok
from zipline_site.config import SETTINGS, load_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_HA = ROOT / "deploy" / "compose"
K8S = ROOT / "deploy" / "k8s"
KNOWN_ENV = {setting.env for setting in SETTINGS}
APP_SERVICES = ("migrate", "api", "grpc", "workers", "scheduler")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
QUEUES = ("default", "high", "low", "emails", "reports")  # they hash to all three masters' slots
MASTER_ADDRESS = "from jobs.broker import get_broker; print(get_broker().master_address())"
QUEUE_HOMES = (
    "from jobs.broker import get_broker; from jobs.broker.cluster import not_a_cluster; "
    "from jobs.broker.connection import redis_cluster_target; b = get_broker(); "
    "print(not_a_cluster(redis_cluster_target()), "
    f"sorted({{b.client.get_node_from_key(b.keys(q).ready).port for q in {QUEUES!r}}}))"
)


# ------------------------------------------------------------------------------------------ the files


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in (service.get("environment") or {}).items()}


def merged_compose(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """docker-compose.yml with ``deploy/compose/<name>.yml`` over it (compose's merge: mappings merged key by key,
    a command replaced), and the override itself."""
    main, override = _yaml(COMPOSE), _yaml(COMPOSE_HA / f"{name}.yml")
    services = {key: dict(value) for key, value in main["services"].items()}
    for key, value in override["services"].items():
        service = services.setdefault(key, {})
        for field, item in value.items():
            if isinstance(item, dict) and isinstance(service.get(field), dict):
                service[field] = {**service[field], **item}
            else:
                service[field] = item
    return {**main, **override, "services": services}, override


def _interpolate(value: str) -> str:
    """Compose's ``${VAR}`` forms, with JQS_SECRET_KEY set as the main file requires and the rest defaulted."""
    given = {"JQS_SECRET_KEY": "x" * 50}
    return re.sub(
        r"\$\{(\w+)(?::[-?]([^}]*))?\}", lambda m: given.get(m.group(1)) or (m.group(2) or ""), value
    )  # fmt: skip


def _hosts(value: str) -> list[tuple[str, int]]:
    """The ``host:port`` pairs of a sentinel list or a ``redis+cluster://`` URL."""
    return [(h, int(p)) for h, p in re.findall(r"([\w.-]+):(\d+)", value.split("://", 1)[-1])]


def _k8s(folder: str) -> dict[tuple[str, str], dict[str, Any]]:
    documents = yaml.safe_load_all((K8S / folder / f"{folder}.yaml").read_text(encoding="utf-8"))
    return {(d["kind"], d["metadata"]["name"]): d for d in documents if d}


def _k8s_settings(folder: str) -> dict[str, str]:
    """zipline-config (deploy/k8s/configmap.yaml) with the folder's patch merged in."""
    base = next(d for d in yaml.safe_load_all((K8S / "configmap.yaml").read_text()) if d["kind"] == "ConfigMap")
    patch = _yaml(K8S / folder / "zipline-config-patch.yaml")
    assert set(patch) == {"data"}, "a strategic merge patch of the ConfigMap's data"
    assert set(patch["data"]) <= KNOWN_ENV, set(patch["data"]) - KNOWN_ENV
    return {**base["data"], **patch["data"]}


def _container(document: dict[str, Any]) -> dict[str, Any]:
    [container] = document["spec"]["template"]["spec"]["containers"]
    return container


# ------------------------------------------------------------------------------- running them locally


class Local:
    """The processes of one example started here: each name in ``ports`` (a service, a pod's DNS name) is
    127.0.0.1 on a free port; the default port after a name becomes that name's port."""

    def __init__(self, tmp_path: Path, defaults: dict[str, int]) -> None:
        self.tmp = tmp_path
        self.ports = {name: (default, free_port()) for name, default in defaults.items()}
        self.processes: list[subprocess.Popen[bytes]] = []

    def localize(self, text: str) -> str:
        for name in sorted(self.ports, key=len, reverse=True):
            default, port = self.ports[name]
            text = re.sub(rf"(?<![\w.$-]){re.escape(name)}([: ]){default}\b", rf"127.0.0.1\g<1>{port}", text)
            text = re.sub(rf"(?<![\w.$-]){re.escape(name)}(?![\w.:+/-])", "127.0.0.1", text)
        return text

    def port(self, name: str) -> int:
        return self.ports[name][1]

    def start(self, argv: list[str], **env: str) -> None:
        import os

        log = open(self.tmp / f"process-{len(self.processes)}.log", "wb")  # noqa: SIM115 - kept open by the child
        self.processes.append(
            subprocess.Popen(argv, cwd=self.tmp, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        )

    def redis_server(self, name: str, command: list[str], *more: str) -> None:
        """``command`` (a redis-server argv of the file) localized, on ``name``'s port, in a directory of its own."""
        directory = self.tmp / name
        directory.mkdir()
        argv = shlex.split(self.localize(shlex.join(command)))
        assert argv[0] == "redis-server", command
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        own = ["--port", str(self.port(name)), "--bind", "127.0.0.1", "--dir", str(directory), *more]
        self.start([binary, *argv[1:], *own])
        self.wait_ping(self.port(name))

    def sentinel(self, name: str, conf: str) -> None:
        """A sentinel of ``conf`` as ``name``: the port its clients are given must be the one ``conf`` listens on."""
        default, port = self.ports[name]
        assert re.search(rf"^port {default}$", conf, re.MULTILINE), f"{name}: conf does not listen on {default}"
        own = re.sub(rf"^port {default}$", f"port {port}", self.localize(conf), flags=re.MULTILINE)
        path = self.tmp / f"{name}.conf"
        path.write_text(own + f"\nbind 127.0.0.1\ndir {self.tmp}\n")
        self.start([shutil.which("redis-server") or "/usr/bin/redis-server", str(path), "--sentinel"])
        self.wait_ping(self.port(name))

    def wait_ping(self, port: int, seconds: float = 15) -> None:
        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + seconds
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"nothing answers on port {port}: {self.logs()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-500:] for p in sorted(self.tmp.glob("process-*.log")))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[list[Local]]:
    made: list[Local] = []
    try:
        yield made
    finally:
        for group in made:
            group.stop()


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.1)


def _sentinels_settled(group: Local, sentinels: list[str], master: str) -> bool:
    """Every sentinel knows the replica and the two other sentinels (as tests/redis_sentinel.py waits)."""
    for name in sentinels:
        client = redis.Redis(port=group.port(name), socket_timeout=1, decode_responses=True)
        try:
            replicas = client.execute_command("SENTINEL", "REPLICAS", master)
            others = client.execute_command("SENTINEL", "SENTINELS", master)
        except redis.RedisError:
            return False
        finally:
            client.close()
        if len(replicas) < 1 or len(others) < 2:
            return False
    return True


def _cluster_roles(port: int) -> list[str]:
    client = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
    try:
        nodes = client.execute_command("CLUSTER", "NODES")
    finally:
        client.close()
    text = nodes if isinstance(nodes, str) else "\n".join(str(n) for n in nodes)
    return sorted("master" if "master" in line.split()[2] else "slave" for line in text.strip().splitlines())


def _zipline(env: dict[str, str], code: str) -> str:
    """The last line ``manage.py shell -c code`` prints with the example's settings (the test's database)."""
    done = manage("shell", "-c", code, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------- compose


@pytest.mark.parametrize("name", ["sentinel", "cluster"])
def test_the_compose_override_sets_known_settings_on_every_zipline_service(name: str) -> None:
    merged, override = merged_compose(name)
    services = merged["services"]
    main = _yaml(COMPOSE)["services"]
    assert set(override["services"]) >= set(APP_SERVICES), "every ZipLine service gets the settings"
    for service in APP_SERVICES:
        env = {key: _interpolate(value) for key, value in _environment(services[service]).items()}
        assert set(_environment(override["services"][service])) <= KNOWN_ENV
        config = load_config(env)  # a value out of bounds is a ConfigError naming it
        hosts = _hosts(config.redis.sentinels) if name == "sentinel" else _hosts(config.redis.url)
        assert hosts and all(host in services for host, _ in hosts), (service, hosts)
        for target, condition in (override["services"][service].get("depends_on") or {}).items():
            assert target in services and condition["condition"] in CONDITIONS, (service, target)
    for key, service in override["services"].items():
        for target in service.get("depends_on") or {}:
            assert target in services, (key, target)
        if key not in main:  # the Redis, sentinel and init services: the main file's Redis image
            assert service["image"] == main["redis"]["image"], key
    # Every Redis node keeps the main file's choice: no persistence (the database is the source of truth).
    no_persistence = main["redis"]["command"]
    for key, service in services.items():
        command = service.get("command") or []
        if command[:1] == ["redis-server"]:
            assert command[: len(no_persistence)] == no_persistence, key


def test_the_sentinel_compose_file_runs(tmp_path: Path, local: list[Local]) -> None:
    """The master (the main file's redis command), the replica and three sentinels (the file's config), on free
    ports; ZipLine, given the file's settings, asks the sentinels and finds the master."""
    merged, override = merged_compose("sentinel")
    services = merged["services"]
    env = _environment(services["workers"])
    sentinels = [host for host, _ in _hosts(env["JQS_REDIS_SENTINELS"])]
    names = {"redis": 6379, "redis-replica": 6379, **dict.fromkeys(sentinels, 26379)}
    group = Local(tmp_path, names)
    local.append(group)
    group.redis_server("redis", services["redis"]["command"])
    group.redis_server("redis-replica", services["redis-replica"]["command"])
    conf = override["configs"]["sentinel-conf"]["content"]
    for sentinel in sentinels:
        command = services[sentinel]["command"]
        assert "/etc/redis/sentinel.conf" in command[-1]
        assert services[sentinel]["configs"][0]["target"] == "/etc/redis/sentinel.conf"
        group.sentinel(sentinel, conf)
    master = env["JQS_REDIS_SENTINEL_MASTER"]
    assert f"sentinel monitor {master} " in conf
    _wait(lambda: _sentinels_settled(group, sentinels, master), 30, "the sentinels found the replica and each other")
    settings = {key: group.localize(env[key]) for key in ("JQS_REDIS_SENTINELS", "JQS_REDIS_SENTINEL_MASTER")}
    assert _zipline(settings, MASTER_ADDRESS) == f"127.0.0.1:{group.port('redis')}"


def test_the_cluster_compose_file_runs(tmp_path: Path, local: list[Local]) -> None:
    """The six nodes (their commands), then redis-cluster-init's command twice (the second finds the cluster up);
    ZipLine, given the file's URL, finds three masters with a replica each and spreads its queues over them."""
    merged, _override = merged_compose("cluster")
    services = merged["services"]
    nodes = [key for key, s in services.items() if "--cluster-enabled" in (s.get("command") or [])]
    assert len(nodes) == 6
    group = Local(tmp_path, dict.fromkeys(nodes, 6379))
    local.append(group)
    for node in nodes:
        group.redis_server(node, services[node]["command"], "--cluster-port", str(free_port()))
    init = services["redis-cluster-init"]["command"]
    assert init[:2] == ["sh", "-c"]
    assert set(services["redis-cluster-init"]["depends_on"]) == set(nodes)
    for _ in range(2):
        done = subprocess.run(["sh", "-c", group.localize(init[2])], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    _wait(lambda: all(cluster_ok(group.port(n)) for n in nodes), 30, "cluster_state:ok on every node")
    three_pairs = ["master"] * 3 + ["slave"] * 3
    _wait(lambda: _cluster_roles(group.port("redis")) == three_pairs, 30, "three masters with a replica each")
    url = group.localize(_environment(services["workers"])["JQS_REDIS_URL"])
    refusal, homes = _zipline({"JQS_REDIS_URL": url}, QUEUE_HOMES).split(" ", 1)
    assert refusal == "None"
    assert len(eval(homes)) == 3  # noqa: S307 - a list of ports printed by the line above


# ---------------------------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("folder", ["redis-sentinel", "redis-cluster"])
def test_the_k8s_redis_objects_agree_with_each_other_and_the_settings(folder: str) -> None:
    """The patch's settings are known and parse with configmap.yaml's; every host they name is a pod of a
    StatefulSet behind its headless Service, on a port the container and the Service open."""
    objects = _k8s(folder)
    settings = _k8s_settings(folder)
    config = load_config(settings)
    hosts = _hosts(config.redis.sentinels) if folder == "redis-sentinel" else _hosts(config.redis.url)
    compose_image = _yaml(COMPOSE)["services"]["redis"]["image"]
    for host, port in hosts:
        pod, _, service_name = host.partition(".")
        stateful_set, _, ordinal = pod.rpartition("-")
        workload = objects[("StatefulSet", stateful_set)]
        service = objects[("Service", service_name)]
        assert workload["spec"]["serviceName"] == service_name and int(ordinal) < workload["spec"]["replicas"]
        assert service["spec"]["clusterIP"] == "None"
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert port in {p["port"] for p in service["spec"]["ports"]}
        assert port in {p["containerPort"] for p in _container(workload)["ports"]}
    for (kind, name), document in objects.items():
        assert "namespace" not in document["metadata"], name
        if kind in ("StatefulSet", "Job"):
            pod = document["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert _container(document)["image"] == compose_image, name
            assert _container(document)["securityContext"]["allowPrivilegeEscalation"] is False, name
    if folder == "redis-sentinel":
        conf = objects[("ConfigMap", "redis-sentinel-config")]["data"]["sentinel.conf"]
        assert f"sentinel monitor {config.redis.sentinel_master} redis-0.redis 6379 " in conf
        volumes = objects[("StatefulSet", "redis-sentinel")]["spec"]["template"]["spec"]["volumes"]
        assert {"name": "config", "configMap": {"name": "redis-sentinel-config"}} in volumes


def test_the_k8s_sentinel_objects_run(tmp_path: Path, local: list[Local]) -> None:
    """redis-0 and redis-1 (the StatefulSet's script, by pod name), three sentinels (the ConfigMap's config);
    ZipLine, given the patched settings, finds redis-0 as the master."""
    objects = _k8s("redis-sentinel")
    settings = _k8s_settings("redis-sentinel")
    sentinels = [host for host, _ in _hosts(settings["JQS_REDIS_SENTINELS"])]
    names = {"redis-0.redis": 6379, "redis-1.redis": 6379, '"$HOSTNAME.redis"': 6379}
    group = Local(tmp_path, {**names, **dict.fromkeys(sentinels, 26379)})
    local.append(group)
    script = _container(objects[("StatefulSet", "redis")])["args"][0]
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    for pod in ("redis-0", "redis-1"):
        own = f"{binary} --port {group.port(pod + '.redis')} --bind 127.0.0.1 --dir {tmp_path}"
        group.start(["sh", "-c", group.localize(script).replace("redis-server", own, 1)], HOSTNAME=pod)
        group.wait_ping(group.port(pod + ".redis"))
    conf = objects[("ConfigMap", "redis-sentinel-config")]["data"]["sentinel.conf"]
    for sentinel in sentinels:
        group.sentinel(sentinel, conf)
    master = settings["JQS_REDIS_SENTINEL_MASTER"]
    _wait(lambda: _sentinels_settled(group, sentinels, master), 30, "the sentinels found the replica and each other")
    patched = {key: group.localize(settings[key]) for key in ("JQS_REDIS_SENTINELS", "JQS_REDIS_SENTINEL_MASTER")}
    assert _zipline(patched, MASTER_ADDRESS) == f"127.0.0.1:{group.port('redis-0.redis')}"


def test_the_k8s_cluster_objects_run(tmp_path: Path, local: list[Local]) -> None:
    """The six pods' command (by pod name), then the Job's script; ZipLine, given the patched URL, finds three
    masters with a replica each and spreads its queues over them."""
    objects = _k8s("redis-cluster")
    workload = objects[("StatefulSet", "redis-cluster")]
    pods = [f"redis-cluster-{n}.redis-cluster" for n in range(workload["spec"]["replicas"])]
    assert len(pods) == 6
    group = Local(tmp_path, {**dict.fromkeys(pods, 6379), '"$HOSTNAME.redis-cluster"': 6379})
    local.append(group)
    script = _container(workload)["args"][0]
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    for pod in pods:
        directory = tmp_path / pod
        directory.mkdir()
        own = f"{binary} --port {group.port(pod)} --bind 127.0.0.1 --dir {directory} --cluster-port {free_port()}"
        text = group.localize(script).replace("redis-server", own, 1).replace("/data/", f"{directory}/")
        group.start(["sh", "-c", text], HOSTNAME=pod.partition(".")[0])
        group.wait_ping(group.port(pod))
    job = _container(objects[("Job", "redis-cluster-init")])
    assert job["command"] == ["sh", "-c"]
    for _ in range(2):  # the Job run again (a retry, a re-apply) leaves the cluster alone
        done = subprocess.run(["sh", "-c", group.localize(job["args"][0])], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    _wait(lambda: all(cluster_ok(group.port(pod)) for pod in pods), 30, "cluster_state:ok on every node")
    three_pairs = ["master"] * 3 + ["slave"] * 3
    _wait(lambda: _cluster_roles(group.port(pods[0])) == three_pairs, 30, "three masters with a replica each")
    refusal, homes = _zipline({"JQS_REDIS_URL": group.localize(_k8s_settings("redis-cluster")["JQS_REDIS_URL"])},
                              QUEUE_HOMES).split(" ", 1)  # fmt: skip
    assert refusal == "None"
    assert len(eval(homes)) == 3  # noqa: S307 - a list of ports printed by the line above
