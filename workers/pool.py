"""Builds the worker pool's options from the configuration and the command line, and runs it."""

from __future__ import annotations

import redis
from django.conf import settings

from jobs.redis_checks import safe_url
from workers.queues import QueueSpecError, parse_queues
from workers.supervisor import PoolOptions, Supervisor


class PoolConfigError(ValueError):
    """A flag or setting the pool cannot use; the message names it."""


def build_options(processes: int | None = None, concurrency: int | None = None, queues: str = "default") -> PoolOptions:
    config = settings.ZIPLINE
    try:
        selector = parse_queues(queues)
    except QueueSpecError as exc:
        raise PoolConfigError(str(exc)) from None
    return PoolOptions(
        processes=processes or config.worker_count,
        concurrency=concurrency or config.worker_max_concurrency,
        selector=selector,
        poll_interval=config.worker_poll_interval,
        job_timeout=config.worker_job_timeout,
        shutdown_timeout=config.worker_shutdown_timeout,
        lease_ttl=config.worker_lease_ttl,
        kill_grace=config.worker_kill_grace,
        max_jobs=config.worker_max_jobs,
        max_result_bytes=config.max_payload_bytes,
        metrics_enabled=config.metrics_enabled,
        metrics_port=config.metrics_port,
        metrics_host=config.metrics_host,
        metrics_path=config.metrics_path,
    )


def check_redis() -> str | None:
    """None when Redis answers; otherwise a one-line reason naming where it was looked for."""
    from jobs.redis_client import get_broker

    try:
        get_broker().client.ping()
    except redis.RedisError as exc:
        return f"cannot reach Redis at {safe_url(settings.REDIS_URL)}: {exc}"
    return None


def run_pool(options: PoolOptions) -> int:
    return Supervisor(options).run()
