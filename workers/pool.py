"""Builds the worker pool's options from the configuration and the command line, and runs it."""

from __future__ import annotations

from workers.selection import QueueSpecError, parse_queues
from workers.supervisor import PoolOptions, Supervisor
from zipline_site.sections import Config


class PoolConfigError(ValueError):
    """A flag or setting the pool cannot use; the message names it."""


def build_options(
    config: Config, processes: int | None = None, concurrency: int | None = None, queues: str = "default"
) -> PoolOptions:
    """The pool's options: ``config``'s worker and metrics sections, its size and queues overridden by flags."""
    try:
        selector = parse_queues(queues)
    except QueueSpecError as exc:
        raise PoolConfigError(str(exc)) from None
    return PoolOptions(
        processes=processes or config.worker.count,
        concurrency=concurrency or config.worker.max_concurrency,
        selector=selector,
        worker=config.worker,
        metrics=config.metrics,
        max_result_bytes=config.api.max_payload_bytes,
    )


def run_pool(options: PoolOptions) -> int:
    return Supervisor(options).run()
