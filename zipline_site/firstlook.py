"""``make run``: ZipLine on one machine for a first look. SQLite, the local Redis, and every process.

It migrates an SQLite file under ``.local/``, makes an ``admin`` user with an API token, and runs the
API, the workers and the scheduler as child processes until Ctrl-C. When nothing answers at the
configured Redis it starts an in-memory stand-in (fakeredis's TCP server, with Lua) inside this
process and says so loudly: good enough to look around, never for production. The production
commands (``runworkers``, ``runscheduler``, gunicorn) never do this; they fail with a clear message.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"


def _secret_key() -> str:
    path = LOCAL / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _redis_answers(url: str) -> bool:
    import redis

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

    LOCAL.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("JQS_DATABASE_URL", f"sqlite:///{LOCAL / 'zipline.sqlite3'}")
    env.setdefault("JQS_SECRET_KEY", _secret_key())
    env.setdefault("JQS_LOG_FORMAT", "text")
    env.setdefault("DJANGO_SETTINGS_MODULE", "zipline_site.settings")
    try:
        config = load_config(env)
    except ConfigError as exc:
        sys.stderr.write(f"zipline: configuration error: {exc}\n")
        raise SystemExit(2) from None
    url = redis_url(config)
    if not _redis_answers(url):
        env["JQS_REDIS_URL"] = _start_stand_in()
    return env


def _prepare(env: dict[str, str]) -> dict[str, str]:
    """Migrate, and make the admin user and its API token (printed on every start)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    return _ensure_admin(LOCAL / "admin-password")


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

    config = settings.ZIPLINE
    host = "127.0.0.1" if config.server_host in ("0.0.0.0", "::") else config.server_host
    base = f"http://{host}:{config.server_port}"
    commands: list[tuple[str, list[str]]] = [
        ("api", ["runserver", f"{config.server_host}:{config.server_port}", "--noreload"]),
        ("workers", ["runworkers", "--queues", "*"]),
    ]
    if config.scheduler_enabled and (ROOT / "scheduler/management/commands/runscheduler.py").exists():
        commands.append(("scheduler", ["runscheduler"]))
    children = [subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env) for _, args in commands]
    print(
        f"""
ZipLine is starting ({", ".join(name for name, _ in commands)}). Ctrl-C stops everything.

  API           {base}/api/v1/      token: {creds["token"]}
  API docs      {base}/api/docs/
  Dashboard     {base}/dashboard/   user: admin  password: {creds["password"]}
  Admin         {base}/admin/
  Health        {base}/health
  Metrics       http://{host}:{config.metrics_port}{config.metrics_path} (workers)

  Try:  curl -H "Authorization: Bearer {creds["token"]}" {base}/api/v1/stats
""",
        flush=True,
    )
    return _supervise(children)


def _supervise(children: list[subprocess.Popen[Any]]) -> int:
    stopping = {"count": 0}

    def stop(signum: int, frame: Any) -> None:
        stopping["count"] += 1
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while any(child.poll() is None for child in children):
        if not stopping["count"] and any(child.poll() is not None for child in children):
            sys.stderr.write("zipline: a process exited; stopping the others\n")
            stop(signal.SIGTERM, None)
        time.sleep(0.2)
    return 0 if stopping["count"] else 1


if __name__ == "__main__":
    sys.exit(main())
