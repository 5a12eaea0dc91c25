"""Prometheus metrics that the API process owns (the workers' live in :mod:`workers.metrics`)."""

from prometheus_client import Counter

DISPATCH_FAILURES = Counter(
    "job_queue_dispatch_deferred_total",
    "Committed jobs whose id could not be pushed to Redis at once (the reconciler pushes them later).",
)
