"""Builds the worker pool's options from the configuration and the command line, and runs it."""

from __future__ import annotations

from django.conf import settings

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
        processes=processes or config.worker.count,
        concurrency=concurrency or config.worker.max_concurrency,
        selector=selector,
        poll_interval=config.worker.poll_interval,
        job_timeout=config.worker.job_timeout,
        shutdown_timeout=config.worker.shutdown_timeout,
        lease_ttl=config.worker.lease_ttl,
        kill_grace=config.worker.kill_grace,
        max_jobs=config.worker.max_jobs,
        max_result_bytes=config.api.max_payload_bytes,
        metrics_enabled=config.metrics.enabled,
        metrics_port=config.metrics.port,
        metrics_host=config.metrics.host,
        metrics_path=config.metrics.path,
    )


def run_pool(options: PoolOptions) -> int:
    return Supervisor(options).run()
