"""Processors and the registry that maps a job type to the processor that runs it.

A processor is the Python form of the seed's ``JobProcessor`` interface: ``name``, ``can_process(type)``
and ``process(job, ctx)``. Register an object (``registry.register("custom_job", CustomProcessor())``)
or decorate a plain function (``@processor("resize_image")``); ``async def`` functions run on the
worker's event loop. Every installed app's ``processors`` module is imported at start-up (``JQS_APPS``
installs the user's own apps), so registrations there are seen by the API (to refuse unknown types)
and by the workers.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from jobs.models import Job


class JobCancelled(Exception):
    """Raised by :meth:`Context.check` when the job was cancelled or its deadline passed."""


class PermanentError(Exception):
    """A failure that retrying cannot fix: the job fails at once, without further attempts."""


class PayloadError(PermanentError):
    """A payload its processor refuses; ``field`` names the offending key (``subject``, ``headers.X-A``).

    Raised at submit by a processor's ``validate_payload`` (the API answers 400 naming ``payload.<field>``),
    and at run time by the same checks (the job fails at once, as for any :class:`PermanentError`).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field or 'payload'}: {message}")


# Guards the moment a context's event is made against a cancel at the same time (both are rare).
_CANCEL_LOCK = threading.Lock()


@dataclass
class Context:
    """What a running job knows about its run: attempt, deadline, cancellation and a logger bound to it."""

    job_id: str
    attempt: int
    deadline: float
    """``time.monotonic()`` value after which the attempt counts as timed out."""
    job_type: str = ""
    cancel_reason: str = ""
    _cancelled: bool = field(default=False, repr=False)
    _event: threading.Event | None = field(default=None, repr=False)

    @cached_property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose lines carry the job's id, type and attempt (made when first used)."""
        fields = {"job_id": self.job_id, "type": self.job_type, "attempt": self.attempt}
        return logging.LoggerAdapter(logging.getLogger("zipline.job"), fields)

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled, timed out, or the worker is handing it back."""
        return self._cancelled

    @property
    def cancel_event(self) -> threading.Event:
        """Set once the job is cancelled: ``ctx.cancel_event.wait(5)`` is a sleep a cancel cuts short.

        Made when first asked for: most jobs never wait on it, and every job's start pays for it.
        """
        if self._event is None:
            with _CANCEL_LOCK:
                if self._event is None:
                    event = threading.Event()
                    if self._cancelled:
                        event.set()
                    self._event = event
        return self._event

    @cached_property
    def parent_results(self) -> dict[str, Any]:
        """The results of the job's parents, by parent id, name and workflow ref (docs/workflows.md).

        Read from the database when first asked for (from an ``async def`` processor, ask for it
        through ``sync_to_async``, as for any query)."""
        from jobs.dependencies import parent_results

        return parent_results(self.job_id)

    def time_left(self) -> float:
        import time

        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job should stop now; call it in long loops."""
        if self._cancelled:
            raise JobCancelled(self.cancel_reason or "cancelled")

    def cancel(self, reason: str) -> None:
        with _CANCEL_LOCK:
            if self._cancelled:
                return
            self.cancel_reason = reason
            self._cancelled = True
            event = self._event
        if event is not None:
            event.set()


@dataclass(frozen=True)
class RetryDefaults:
    """A processor's default retry policy; a job's own values take precedence."""

    max_retries: int | None = None
    backoff: str | None = None
    initial_delay: float | None = None
    max_delay: float | None = None
    jitter: bool | None = None


@runtime_checkable
class JobProcessor(Protocol):
    """The interface every processor implements (the seed's ``JobProcessor``)."""

    name: str

    def can_process(self, job_type: str) -> bool: ...

    def process(self, job: Job, ctx: Context) -> Any: ...


PayloadValidator = Callable[[dict[str, Any]], Any]
"""``validate_payload(payload)``: raise :class:`PayloadError` for a payload the processor cannot run."""


class FunctionProcessor:
    """Adapts a plain (or ``async``) function ``fn(payload, ctx)`` to :class:`JobProcessor`."""

    def __init__(
        self,
        job_type: str,
        function: Callable[..., Any],
        *,
        retry: RetryDefaults | None = None,
        timeout: float | None = None,
        payload_schema: dict[str, Any] | None = None,
        validate_payload: PayloadValidator | None = None,
        limits: Any = None,
    ) -> None:
        self.name = job_type
        self.limits = limits  # jobs.limits.TypeLimits, or None
        self.function = function
        self.retry = retry or RetryDefaults()
        self.timeout = timeout
        self.is_async = inspect.iscoroutinefunction(function)
        self.payload_schema = payload_schema
        if validate_payload is not None:
            self.validate_payload = validate_payload

    def can_process(self, job_type: str) -> bool:
        return job_type == self.name

    def process(self, job: Job, ctx: Context) -> Any:
        return self.function(job.payload, ctx)


class UnknownJobType(LookupError):
    """No processor is registered for a job type."""


class Registry:
    """Job type -> processor. Thread-safe reads; registration happens at start-up."""

    def __init__(self) -> None:
        self._processors: dict[str, JobProcessor] = {}

    def register(self, job_type: str, processor: JobProcessor) -> JobProcessor:
        if not job_type or not isinstance(job_type, str):
            raise ValueError("a job type is a non-empty string")
        if not isinstance(processor, JobProcessor):
            raise TypeError(f"{processor!r} does not implement JobProcessor (name, can_process, process)")
        if not processor.can_process(job_type):
            raise ValueError(f"processor {processor.name!r} says it cannot process {job_type!r}")
        schema = getattr(processor, "payload_schema", None)
        if schema is not None:
            from jobs.payloads import check_schema

            check_schema(schema)
        self._processors[job_type] = processor
        return processor

    def unregister(self, job_type: str) -> None:
        self._processors.pop(job_type, None)

    def get(self, job_type: str) -> JobProcessor:
        try:
            return self._processors[job_type]
        except KeyError:
            raise UnknownJobType(f"unknown job type {job_type!r}") from None

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._processors

    def types(self) -> list[str]:
        return sorted(self._processors)


registry = Registry()


def processor(
    job_type: str,
    *,
    max_retries: int | None = None,
    backoff: str | None = None,
    initial_delay: float | None = None,
    max_delay: float | None = None,
    timeout: float | None = None,
    payload_schema: dict[str, Any] | None = None,
    validate_payload: PayloadValidator | None = None,
    rate_limit: str | None = None,
    rate_burst: int | None = None,
    concurrency: int | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function ``fn(payload, ctx)`` as the processor of ``job_type``; returns it unchanged.

    ``payload_schema`` (a JSON Schema) and ``validate_payload`` check each payload at submit: see
    :mod:`jobs.payloads`. ``rate_limit`` (``"10/s"``, with ``rate_burst``) and ``concurrency`` limit
    the type's jobs in each queue, across every worker (docs/flow-control.md); a malformed one raises
    :class:`jobs.limits.InvalidLimit` here, at start-up.
    """
    from jobs.limits import TypeLimits

    limits = TypeLimits.parse(rate_limit, rate_burst, concurrency)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        retry = RetryDefaults(max_retries, backoff, initial_delay, max_delay)
        proc = FunctionProcessor(
            job_type,
            function,
            retry=retry,
            timeout=timeout,
            payload_schema=payload_schema,
            validate_payload=validate_payload,
            limits=limits if limits.is_set else None,
        )
        registry.register(job_type, proc)
        return function

    return decorate


def retry_defaults(proc: JobProcessor) -> RetryDefaults:
    """The processor's declared retry defaults (an attribute ``retry``), or none."""
    value = getattr(proc, "retry", None)
    return value if isinstance(value, RetryDefaults) else RetryDefaults()


def timeout_default(proc: JobProcessor) -> float | None:
    value = getattr(proc, "timeout", None)
    return float(value) if isinstance(value, (int, float)) else None


def is_async(proc: JobProcessor) -> bool:
    """True when the processor's work is a coroutine, to run on the worker's event loop."""
    if isinstance(proc, FunctionProcessor):
        return proc.is_async
    return inspect.iscoroutinefunction(proc.process)
