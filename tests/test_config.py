"""Configuration: defaults, the seed's YAML, precedence, and a one-line error for each bad value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zipline_site.config import SETTINGS, ConfigError, load_config, redis_url
from zipline_site.durations import DurationError, format_duration, parse_duration

ROOT = Path(__file__).resolve().parent.parent

SEED_YAML = """\
server: {host: "0.0.0.0", port: 8080, grpc_port: 9090}
redis: {host: "localhost", port: 6379, password: "", database: 0}
worker: {count: 4, max_concurrency: 100, poll_interval: "1s", job_timeout: "5m"}
scheduler: {enabled: true, poll_interval: "30s", batch_size: 100}
metrics: {enabled: true, port: 9091, path: "/metrics"}
logging: {level: "info", format: "json"}
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("5s", 5), ("1h30m", 5400), ("1.5s", 1.5), ("2m3s", 123), ("0", 0), (3, 3), ("100us", 0.0001)],
)
def test_go_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "5x",
        "s",
        "-1s",
        "1h-5m",
        "five seconds",
        "1s ",
        True,
        -2,
        "\u0663s",  # an Arabic-Indic 3: durations are written in ASCII digits
        "9" * 400 + "s",
        10**400,
        float("inf"),
        float("nan"),
    ],
)
def test_bad_durations(text: object) -> None:
    if text == "1s ":
        assert parse_duration("1s ") == 1  # surrounding space is forgiven
        return
    with pytest.raises(DurationError):
        parse_duration(text)  # type: ignore[arg-type]


def test_format_duration_round_trips() -> None:
    for seconds in (0.25, 1, 90, 5400, 3661):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_defaults_are_the_seeds() -> None:
    config = load_config({})
    expected = {
        "redis_host": "localhost",
        "redis_port": 6379,
        "redis_password": "",
        "redis_database": 0,
        "server_host": "0.0.0.0",
        "server_port": 8080,
        "worker_count": 4,
        "worker_max_concurrency": 100,
        "worker_poll_interval": 1.0,
        "scheduler_enabled": True,
        "scheduler_poll_interval": 30.0,
        "metrics_enabled": True,
        "metrics_port": 9091,
        "worker_job_timeout": 300.0,
        "redis_key_prefix": "zipline",
        "max_payload_bytes": 1048576,
        "worker_shutdown_timeout": 30.0,
        "retention_completed": 7 * 86400.0,
        "retention_failed": 30 * 86400.0,
    }
    assert {k: config.values[k] for k in expected} == expected


def test_seed_yaml_loads_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SEED_YAML)
    config = load_config({"JQS_CONFIG": str(path)})
    assert config.server.grpc_port == 9090 and config.worker.job_timeout == 300 and config.logging.format == "json"


def test_environment_over_file_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("worker: {count: 8, poll_interval: 2s}\nredis: {port: 6380}\n")
    config = load_config({"JQS_WORKER_COUNT": "3"}, str(path))
    assert (config.worker.count, config.worker.poll_interval, config.redis.port, config.redis.host) == (
        3,
        2.0,
        6380,
        "localhost",
    )


def test_an_ipv6_redis_host_is_bracketed_in_the_url() -> None:
    assert redis_url(load_config({"JQS_REDIS_HOST": "::1", "JQS_REDIS_PORT": "6391"})) == "redis://[::1]:6391/0"


def test_redis_url_overrides_the_parts() -> None:
    assert (
        redis_url(load_config({"JQS_REDIS_PASSWORD": "p@ss", "JQS_REDIS_DATABASE": "2"}))
        == "redis://:p%40ss@localhost:6379/2"
    )
    url = "rediss://user:secret@redis.example:6380/1"
    assert redis_url(load_config({"JQS_REDIS_URL": url, "JQS_REDIS_HOST": "ignored"})) == url


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JQS_WORKER_POLL_INTERVAL": "soon"}, "JQS_WORKER_POLL_INTERVAL='soon': not a duration"),
        ({"JQS_WORKER_COUNT": "-1"}, "JQS_WORKER_COUNT='-1': expected a whole number from 1 to 256"),
        ({"JQS_WORKER_LEASE_TTL": "100ms"}, "JQS_WORKER_LEASE_TTL='100ms': expected a duration of at least 1s"),
        ({"JQS_REDIS_PORT": "http"}, "JQS_REDIS_PORT='http': expected a whole number"),
        ({"JQS_METRICS_ENABLED": "maybe"}, "JQS_METRICS_ENABLED='maybe': expected true or false"),
        ({"JQS_LOG_FORMAT": "xml"}, "JQS_LOG_FORMAT='xml': expected one of json, text"),
        ({"JQS_REDIS_URL": "http://x"}, "JQS_REDIS_URL='http://x'"),
        ({"JQS_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8,nope"}, "'nope' is not a CIDR network"),
        ({"JQS_CONFIG": "/no/such/file.yaml"}, "no such file"),
        ({"JQS_API_OPEN": "true"}, "JQS_API_OPEN=true needs JQS_DEBUG=true"),
        ({"JQS_DATABASE_URL": "postgres://u@127.0.0.1:99999/db"}, "Port out of range"),
        ({"JQS_DATABASE_URL": "postgres://u@[::1/db"}, "Invalid IPv6 URL"),
        ({"JQS_DATABASE_URL": "postgres:///db"}, "expected a host"),
        ({"JQS_DATABASE_URL": "sqlite:///"}, "expected a file after sqlite:///"),
        ({"JQS_REDIS_URL": "redis://:99999"}, "JQS_REDIS_URL='redis://:99999': Port out of range"),
        ({"JQS_REDIS_URL": "redis://127.0.0.1:abc/0"}, "Port could not be cast"),
        ({"JQS_REDIS_URL": "redis://"}, "expected a host"),
        ({"JQS_REDIS_URL": "redis://127.0.0.1:6379/x"}, "'x' is not a database number"),
        ({"JQS_WORKER_POLL_INTERVAL": "3000000h"}, "expected a duration of at most 10 years"),
        ({"JQS_RETENTION_COMPLETED": "30000000000h"}, "expected a duration of at most 10 years"),
        ({"JQS_WORKER_COUNT": "\u0663"}, "expected a whole number"),
        ({"JQS_WORKER_COUNT": "1_0"}, "expected a whole number"),
        ({"JQS_MAX_PAYLOAD_BYTES": "9" * 26}, "expected a whole number of at most 18 digits"),
        ({"JQS_WORKER_MAX_JOBS": "9" * 12}, "expected a whole number from 0 to 1000000000"),
        ({"JQS_METRICS_PATH": "metrics"}, "expected a path starting with /"),
        ({"JQS_METRICS_HOST": "http://0.0.0.0"}, "JQS_METRICS_HOST='http://0.0.0.0': expected an IP address or a host"),
    ],
)
def test_bad_values_name_the_setting_and_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("worker: {count: 4, colour: blue}\n", "unknown key worker.colour"),
        ("workers: {count: 4}\n", "unknown section 'workers'"),
        ("worker: {poll_interval: 10 seconds}\n", "worker.poll_interval='10 seconds'"),
        ("worker: [1, 2]\n", "section 'worker' must be a mapping"),
        ("worker: {count: 4\n", "not valid YAML"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config({}, str(path))


def test_the_sentinel_and_cluster_settings_come_from_the_file_too(tmp_path: Path) -> None:
    """Issue 16: the sentinels, their master's name and password, and the cluster flag, in the YAML file; a bad
    sentinel port there is one line naming the key."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "redis:\n  sentinels: s1:26379,s2:26379,s3:26379\n  sentinel_master: zipline\n  sentinel_password: pw\n"
    )
    redis = load_config({}, str(path)).redis
    assert (redis.sentinels, redis.sentinel_master, redis.sentinel_password) == (
        "s1:26379,s2:26379,s3:26379",
        "zipline",
        "pw",
    )
    assert load_config({"JQS_REDIS_SENTINEL_MASTER": "other"}, str(path)).redis.sentinel_master == "other"
    path.write_text("redis: {url: 'redis://10.0.0.5:7000/0', cluster: true}\n")
    assert load_config({}, str(path)).redis.cluster is True
    path.write_text("redis: {sentinels: 's1:99999'}\n")
    with pytest.raises(ConfigError) as caught:
        load_config({}, str(path))
    assert "redis.sentinels='s1:99999'" in str(caught.value) and "\n" not in str(caught.value)


def test_every_env_variable_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert not missing


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JQS_")}
    full_env.update({"DJANGO_SETTINGS_MODULE": "zipline_site.settings", "JQS_SECRET_KEY": "x", **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_a_bad_value_stops_a_command_with_one_line_and_status_2() -> None:
    result = _manage("check", JQS_WORKER_POLL_INTERVAL="fast")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "zipline: configuration error: JQS_WORKER_POLL_INTERVAL='fast': not a duration: 'fast' (use e.g. 250ms, 5s, 1h30m)"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"JQS_DATABASE_URL": "postgres://postgres@127.0.0.1:99999/x"},
        {"JQS_REDIS_URL": "redis://:99999"},
        {"JQS_WORKER_POLL_INTERVAL": "3000000h"},
    ],
)
def test_a_url_or_duration_no_client_could_use_is_one_line_not_a_traceback(env: dict[str, str]) -> None:
    result = _manage("check", **env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith(f"zipline: configuration error: {next(iter(env))}=")
    assert len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_before_a_command_handles_it_exits_130_without_a_traceback() -> None:
    result = _manage("shell", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGINT)")
    assert result.returncode == 130 and "Traceback" not in result.stderr and result.stderr.strip() == ""


def test_an_empty_config_flag_is_refused() -> None:
    result = _manage("check", "--config", "")
    assert result.returncode == 2
    assert result.stderr.strip() == "zipline: configuration error: --config='': expected the path of a YAML file"


def test_config_flag_is_read_before_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("worker: {count: nope}\n")
    result = _manage("runworkers", "--config", str(path))
    assert result.returncode == 2 and "worker.count='nope'" in result.stderr and "Traceback" not in result.stderr


def test_missing_secret_key_is_refused() -> None:
    result = _manage("check", JQS_SECRET_KEY="")
    assert result.returncode == 2 and "JQS_SECRET_KEY is required" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"JQS_REDIS_URL": "redis://:SuperSecretRedisPw@127.0.0.1:99999/0"},
        {"JQS_REDIS_URL": "rediss://default:SuperSecretRedisPw@redis.example:abc/0"},
        {"JQS_REDIS_URL": "redis://:SuperSecretRedisPw@127.0.0.1:6379/x"},
        {"JQS_DATABASE_URL": "postgres://zipline:SuperSecretRedisPw@127.0.0.1:99999/zipline"},
        {"JQS_DATABASE_URL": "postgres://zipline:SuperSecretRedisPw@[::1/zipline"},
        {"JQS_DATABASE_URL": "mysql://zipline:SuperSecretRedisPw@db/zipline"},
        {"JQS_REDIS_URL": "redis://:Super@Secret'Redis/Pw@127.0.0.1:99999/0"},
        {"JQS_DATABASE_URL": "postgres://zipline:Super/Secret@127.0.0.1:5432/zipline"},
        {"JQS_REDIS_URL": "redis://:Super#Secret@127.0.0.1:6379/0"},
    ],
)
def test_configuration_errors_mask_url_passwords(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    message = str(caught.value)
    assert not {"Super", "Secret", "Redis", "Pw"} & set(re.split(r"[@'/:]", message)), message
    assert "SuperSecretRedisPw" not in message and ":***@" in message, message
    assert message.startswith(f"{next(iter(env))}=")


def test_a_yaml_url_error_masks_the_password_too(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("redis: {url: 'redis://:SuperSecretRedisPw@127.0.0.1:99999/0'}\n")
    with pytest.raises(ConfigError) as caught:
        load_config({}, str(path))
    assert "SuperSecretRedisPw" not in str(caught.value) and "redis.url='redis://:***@127.0.0.1:99999/0'" in str(
        caught.value
    )


def test_a_password_that_cuts_its_url_short_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"JQS_REDIS_URL": "redis://:pa/ss@127.0.0.1:6379/0"})
    assert str(caught.value) == (
        "JQS_REDIS_URL='redis://:***@127.0.0.1:6379/0': "
        'the password holds "/", "?" or "#": percent-encode it (%2F, %3F, %23)'
    )
    # An "@" after the address (in the query) is no password: such a URL is taken as it is.
    url = "redis://:pw@127.0.0.1:6379/0?client_name=a@b"
    assert load_config({"JQS_REDIS_URL": url}).redis.url == url


def test_a_bad_secret_setting_is_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("redis: {password: [SuperSecretRedisPw]}\n")
    with pytest.raises(ConfigError) as caught:
        load_config({}, str(path))
    assert str(caught.value) == "redis.password='***': expected a string"


def test_a_command_never_prints_the_password_of_a_bad_url() -> None:
    result = _manage("check", JQS_REDIS_URL="redis://:SuperSecretRedisPw@127.0.0.1:99999/0")
    assert result.returncode == 2 and "SuperSecretRedisPw" not in result.stderr + result.stdout
    assert result.stderr.strip() == (
        "zipline: configuration error: JQS_REDIS_URL='redis://:***@127.0.0.1:99999/0': "
        "Port out of range 0-65535 (expected e.g. redis://127.0.0.1:6379/0)"
    )


def test_an_empty_database_url_is_an_error_and_unset_is_the_default() -> None:
    with pytest.raises(ConfigError, match=r"^JQS_DATABASE_URL='': expected a postgres:// or sqlite:/// URL"):
        load_config({"JQS_DATABASE_URL": ""})
    with pytest.raises(ConfigError, match=r"^JQS_DATABASE_URL='  '"):
        load_config({"JQS_DATABASE_URL": "  "})
    assert load_config({}).database.url == f"sqlite:///{ROOT / 'zipline.sqlite3'}"
    result = _manage("check", JQS_DATABASE_URL="")
    assert result.returncode == 2 and result.stderr.startswith("zipline: configuration error: JQS_DATABASE_URL=''")
