"""``make run``: ZipLine on one machine for a first look. SQLite, the local Redis, and every process.

It migrates an SQLite file under ``.local/``, makes an ``admin`` user with an API token, and runs the
API, the gRPC API, the workers and the scheduler as child processes until Ctrl-C. The gRPC API is left
out, and the banner says so, when its port is taken (9090 is also Prometheus's default). Its settings go to ``.local/env``,
where ``manage.py`` finds them (:mod:`zipline_site.localenv`). The API and the workers' metrics listen
on 127.0.0.1 unless ``JQS_SERVER_HOST`` / ``JQS_METRICS_HOST`` say otherwise: the banner prints an
admin password and a token. When nothing answers at the
configured Redis it starts an in-memory stand-in (fakeredis's TCP server, with Lua) inside this
process and says so loudly: good enough to look around, never for production. The production
commands (``runworkers``, ``runscheduler``, gunicorn) never do this; they fail with a clear message.

Each child runs in a process group of its own, so a Ctrl-C reaches this process alone, which passes
one SIGTERM to each child: the workers drain their running jobs, as on any first stop signal. A second
Ctrl-C passes a second SIGTERM (the workers hand their jobs back at once).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zipline_site import localenv

ROOT = Path(__file__).resolve().parent.parent
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _secret_key(local: Path) -> str:
    path = local / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def first_look_environment(environ: Mapping[str, str], local: Path) -> dict[str, str]:
    """The caller's environment over the first look's defaults: SQLite and a secret in ``local``, local addresses."""
    env = dict(environ)
    env.setdefault("JQS_DATABASE_URL", f"sqlite:///{local / 'zipline.sqlite3'}")
    if "JQS_SECRET_KEY" not in env:
        env["JQS_SECRET_KEY"] = _secret_key(local)
    env.setdefault("JQS_LOG_FORMAT", "text")
    # Reachable from this machine only, unless told otherwise: the banner prints a password and a token.
    env.setdefault("JQS_SERVER_HOST", "127.0.0.1")
    env.setdefault("JQS_METRICS_HOST", "127.0.0.1")
    env.setdefault("DJANGO_SETTINGS_MODULE", "zipline_site.settings")
    return env


def _redis_answers(url: str, cluster: bool = False) -> bool:
    """Whether a Redis answers at ``url``; a Redis Cluster (``redis+cluster://`` or ``JQS_REDIS_CLUSTER``) is
    taken as told, never replaced by the stand-in (the services say so in one line if it does not answer)."""
    import redis

    from zipline_site.parsers import CLUSTER_SCHEMES

    if cluster or url.startswith(CLUSTER_SCHEMES):
        return True
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


def _start_stand_in() -> str:
    """Serve an in-memory Redis (fakeredis with Lua) on a free local port; returns its URL."""
    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True).start()
    port = server.server_address[1]
    banner = "=" * 78
    print(
        f"\n{banner}\n  NO REDIS ANSWERED: using an in-memory stand-in (fakeredis) on port {port}.\n"
        f"  Fine for a first look; nothing survives a restart. Install and start Redis for real use.\n{banner}\n",
        flush=True,
    )
    return f"redis://127.0.0.1:{port}/0"


def _environment() -> dict[str, str]:
    from zipline_site.config import ConfigError, load_config, redis_url

    local = localenv.local_dir()
    # Its owner's only: Django makes the SQLite file (password and token hashes, payloads) readable by all.
    local.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = first_look_environment(os.environ, local)
    try:
        config = load_config(env)
    except ConfigError as exc:
        sys.stderr.write(f"zipline: configuration error: {exc}\n")
        raise SystemExit(2) from None
    url = redis_url(config)
    if not _redis_answers(url, config.redis.cluster):
        env["JQS_REDIS_URL"] = _start_stand_in()
    localenv.write(localenv.env_file(env), env)
    return env


def _prepare(env: dict[str, str]) -> dict[str, str]:
    """Migrate, and make the admin user and its API token (printed on every start)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    return _ensure_admin(localenv.local_dir(env) / "admin-password")


def _ensure_admin(password_file: Path) -> dict[str, str]:
    """The first-look superuser ``admin`` (password kept in ``.local/``) and its API token."""
    from django.contrib.auth import get_user_model

    from jobs.tokens import kept_token

    user_model = get_user_model()
    user = user_model.objects.filter(username="admin").first()
    if user is None or not password_file.exists():
        password = secrets.token_urlsafe(12)
        if user is None:
            user = user_model.objects.create_superuser("admin", "admin@localhost", password)
        else:
            user.set_password(password)
            user.save()
        password_file.write_text(password)
        password_file.chmod(0o600)
    return {
        "token": kept_token(user, password_file.with_name("api-token")),
        "password": password_file.read_text().strip(),
    }


def main() -> int:
    env = _environment()
    try:
        creds = _prepare(env)
    except subprocess.CalledProcessError:
        sys.stderr.write("zipline: migrations failed (see above)\n")
        return 1
    from django.conf import settings

    from zipline_site.config import server_address

    config = settings.ZIPLINE
    commands: list[tuple[str, list[str]]] = [
        ("api", ["runserver", server_address(config), "--noreload"]),
        ("workers", ["runworkers", "--queues", "*"]),
    ]
    if config.scheduler.enabled and (ROOT / "scheduler/management/commands/runscheduler.py").exists():
        commands.append(("scheduler", ["runscheduler"]))
    if port_free(config.server.host, config.server.grpc_port):
        commands.append(("grpc", ["rungrpc"]))
    stops = _StopSignals()  # before the children start, so that no stop signal can miss one of them
    # process_group=0: a group of its own, out of reach of the terminal's Ctrl-C (see the module's docstring).
    children = [
        subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, process_group=0)
        for _, args in commands
    ]
    names = [name for name, _ in commands]
    print(banner(config, names, creds, localenv.env_file(env)), flush=True)
    return _supervise(children, stops)


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host``:``port`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _reachable(host: str) -> str:
    """An address to print for a listening host: a wildcard is reached through the loopback."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def banner(config: Any, names: list[str], creds: dict[str, str], env_file: Path) -> str:
    """What ``make run`` prints once its processes start: where everything is, and how to get in."""
    base = f"http://{_reachable(config.server.host)}:{config.server.port}"
    metrics = (
        f"http://{_reachable(config.metrics.host)}:{config.metrics.port}{config.metrics.path} (workers)"
        if config.metrics.enabled
        else "off (JQS_METRICS_ENABLED=false)"
    )
    grpc_port = config.server.grpc_port
    grpc = (
        f"{_reachable(config.server.host)}:{grpc_port}  (same token; docs/grpc.md)"
        if "grpc" in names
        else f"not started: port {grpc_port} is in use (set JQS_SERVER_GRPC_PORT)"
    )
    return f"""
ZipLine is starting ({", ".join(names)}). Ctrl-C stops everything.

  API           {base}/api/v1/      token: {creds["token"]}
  API docs      {base}/api/docs/
  Dashboard     {base}/dashboard/   user: admin  password: {creds["password"]}
  Admin         {base}/admin/
  Health        {base}/health
  gRPC API      {grpc}
  Metrics       {metrics}

  Try:  curl -H "Authorization: Bearer {creds["token"]}" {base}/api/v1/stats

  manage.py in this checkout uses these settings; for other tools:  . {env_file}
"""


class _StopSignals:
    """Counts the stop signals this process gets; the supervising loop passes each one on to the children.

    The handler only counts, so a signal never interrupts the passing on of the one before: each child
    gets exactly one SIGTERM per signal (the first drains, a second hands jobs back).
    """

    def __init__(self) -> None:
        self.received = 0
        self.passed = 0
        self.arrived = threading.Event()
        for signum in STOP_SIGNALS:  # SIGHUP: a closed terminal, which no longer reaches the children itself
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received += 1
        self.arrived.set()

    def pass_on(self, children: list[subprocess.Popen[Any]]) -> None:
        while self.passed < self.received:
            self.passed += 1
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

    def wait(self, seconds: float) -> None:
        self.arrived.wait(seconds)
        self.arrived.clear()


def _supervise(children: list[subprocess.Popen[Any]], stops: _StopSignals) -> int:
    """Pass stop signals on until every child has exited; 1 when one exited by itself (the rest are stopped)."""
    exited_by_itself = False
    while True:
        stops.pass_on(children)
        if all(child.poll() is not None for child in children):
            return 1 if exited_by_itself else 0
        if not stops.received and any(child.poll() is not None for child in children):
            sys.stderr.write("zipline: a process exited; stopping the others\n")
            exited_by_itself = True
            stops.received = 1
            continue
        stops.wait(0.2)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C while migrating or starting, before the children are started
        sys.exit(130)
