"""The benchmark's three job bodies as ZipLine processors (see bench/common.py for the contract)."""

from __future__ import annotations

from typing import Any

from bench.common import job_noop, job_redis, job_sleep, job_stamp
from jobs.registry import Context, processor, registry

if "bench_noop" not in registry:

    @processor("bench_noop")
    def noop(payload: dict[str, Any], ctx: Context) -> None:
        job_noop(job_redis())

    @processor("bench_sleep")
    def sleep(payload: dict[str, Any], ctx: Context) -> None:
        job_sleep(job_redis(), payload["seconds"])

    @processor("bench_api")
    def api(payload: dict[str, Any], ctx: Context) -> None:
        """Submitted by bench/api_bench.py; never run there (it measures submission only)."""

    @processor("bench_stamp")
    def stamp(payload: dict[str, Any], ctx: Context) -> None:
        job_stamp(job_redis(), payload["enqueued_at"])
