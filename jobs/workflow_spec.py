"""A workflow's body checked before anything is written: its jobs, their local refs and the graph.

``POST /api/v1/workflows`` and ``jobs.client.workflow`` share this, so both refuse alike: each error
is an :class:`InvalidJob` naming the job and the field (``jobs[3].depends_on``) and saying why, for
more than :data:`MAX_JOBS` jobs, an unknown or repeated ref, more than 1,000 parents, or a cycle.

``chain`` and ``group`` build the common shapes as plain lists of job objects.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.dependencies import check_list
from jobs.ids import parse_job_id
from jobs.validation import MAX_NAME, InvalidJob, JobSpec, check_text

MAX_JOBS = 10_000
SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(JobSpec))
REFUSED_IN_WORKFLOW = ("idempotency_key", "unique_for", "unique_key", "unique_until", "batch")
_AUTO_REFS = itertools.count(1)


@dataclass
class Step:
    """One job of a workflow: its spec (``depends_on`` taken out), its ref and its parents."""

    index: int
    ref: str
    spec: JobSpec
    local: list[int] = field(default_factory=list)  # indexes of parents in the workflow
    external: list[uuid.UUID] = field(default_factory=list)  # stored jobs


def parse_steps(jobs: Any) -> list[Step]:
    """The steps of ``jobs`` (a list of job objects with ``ref``), their parents resolved, the graph
    checked."""
    if not isinstance(jobs, list) or not 1 <= len(jobs) <= MAX_JOBS:
        raise InvalidJob("jobs", f"must be a list of 1 to {MAX_JOBS:,} jobs")
    steps: list[Step] = []
    refs: dict[str, int] = {}
    for index, raw in enumerate(jobs):
        step = _step(index, raw)
        if step.ref in refs:
            raise InvalidJob(f"jobs[{index}].ref", f"{step.ref!r} is jobs[{refs[step.ref]}]'s ref too")
        if step.ref:
            refs[step.ref] = index
        steps.append(step)
    for step in steps:
        _resolve(step, refs)
    check_acyclic(steps)
    return steps


def _step(index: int, raw: Any) -> Step:
    prefix = f"jobs[{index}]"
    if not isinstance(raw, dict):
        raise InvalidJob(prefix, "must be an object")
    values = dict(raw)
    ref = values.pop("ref", "")
    if not isinstance(ref, str) or len(ref) > MAX_NAME:
        raise InvalidJob(f"{prefix}.ref", f"must be a string of at most {MAX_NAME} characters")
    check_text(f"{prefix}.ref", ref)
    for name in REFUSED_IN_WORKFLOW:
        if values.get(name) is not None:
            raise InvalidJob(f"{prefix}.{name}", "is not taken in a workflow (its jobs are created all or none)")
    unknown = sorted(key for key in values if key not in SPEC_FIELDS)
    if unknown:
        raise InvalidJob(f"{prefix}.{unknown[0]}", "unknown field")
    values.setdefault("type", None)  # missing: "is required", as for one job
    return Step(index, ref, JobSpec(**values))


def _resolve(step: Step, refs: dict[str, int]) -> None:
    """Each entry of ``depends_on``: a ref of the workflow, else a stored job's id."""
    field_name = f"jobs[{step.index}].depends_on"
    if step.spec.depends_on is None:
        return
    local: dict[int, None] = {}
    external: dict[uuid.UUID, None] = {}
    for k, value in enumerate(check_list(step.spec.depends_on, field_name)):
        if isinstance(value, str) and value in refs:
            local[refs[value]] = None
            continue
        pk = parse_job_id(value) if isinstance(value, str) else None
        if pk is None:
            raise InvalidJob(f"{field_name}[{k}]", f"{value!r} is no ref of this workflow and no job id")
        external[pk] = None
    if step.index in local:
        raise InvalidJob(field_name, f"job {step.ref!r} depends on itself")
    step.local, step.external = list(local), list(external)


def check_acyclic(steps: Sequence[Step]) -> None:
    """Refuse a cycle, naming a job on it and the cycle's refs (Kahn's algorithm, then a walk back)."""
    children: list[list[int]] = [[] for _ in steps]
    left = [len(step.local) for step in steps]
    for step in steps:
        for parent in step.local:
            children[parent].append(step.index)
    ready = [i for i, n in enumerate(left) if n == 0]
    while ready:
        for child in children[ready.pop()]:
            left[child] -= 1
            if left[child] == 0:
                ready.append(child)
    stuck = [i for i, n in enumerate(left) if n]
    if stuck:
        loop = _a_cycle(steps, stuck[0], set(stuck))
        names = " -> ".join(repr(steps[i].ref or f"jobs[{i}]") for i in loop)
        raise InvalidJob(f"jobs[{loop[0]}].depends_on", f"forms a cycle: {names}")


def _a_cycle(steps: Sequence[Step], start: int, stuck: set[int]) -> list[int]:
    """Follow parents that are themselves stuck from ``start`` until one repeats: that loop."""
    seen: dict[int, int] = {}
    path: list[int] = []
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(p for p in steps[node].local if p in stuck)
    return [*path[seen[node] :], node]


# -- shapes ------------------------------------------------------------------------------------------


def group(*jobs: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs that run side by side: a list of copies of ``jobs`` (a group inside a group is flattened)."""
    return [dict(job) for item in jobs for job in (item if isinstance(item, list) else [item])]


def chain(*steps: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps that run one after another; a step is one job or a :func:`group`, whose every job waits
    for every job of the step before. Jobs without a ``ref`` are given one."""
    out: list[dict[str, Any]] = []
    previous: list[str] = []
    for step in steps:
        jobs = group(step)
        for job in jobs:
            job.setdefault("ref", f"step-{next(_AUTO_REFS)}")
            if previous:
                job["depends_on"] = [*job.get("depends_on", []), *previous]
        previous = [job["ref"] for job in jobs]
        out.extend(jobs)
    return out
