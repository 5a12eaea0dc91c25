"""Prometheus metrics that the jobs app owns (the workers' own live in :mod:`workers.metrics`).

A value counted in a worker process is served by the workers' metrics endpoint, one counted in an API
process by the API's: Prometheus sums the two.
"""

from prometheus_client import Counter

DISPATCH_FAILURES = Counter(
    "job_queue_dispatch_deferred_total",
    "Committed jobs whose id could not be pushed to Redis at once (the reconciler pushes them later).",
)

BATCHES_FINISHED = Counter(
    "job_queue_batches_finished",
    "Batches finished (closed, every job ended, callbacks enqueued), by outcome: success when every job "
    "completed, failure otherwise (docs/workflows.md).",
    ["outcome"],
)
