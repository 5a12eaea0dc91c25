"""The built-in processors, registered when the jobs app starts: send_email, webhook, process_data,
and the two that run Django tasks (jobs/tasks_backend).

Registration only fills types nobody has registered yet, so importing this module again changes nothing
and an app that registered its own processor for one of these types first keeps it.
"""

from __future__ import annotations

from jobs.processors.data import ProcessDataProcessor
from jobs.processors.email import SendEmailProcessor
from jobs.processors.webhook import WebhookProcessor
from jobs.registry import JobProcessor, Registry, registry
from jobs.tasks_backend.runner import AsyncDjangoTaskProcessor, DjangoTaskProcessor

BUILTIN_PROCESSORS: dict[str, type[JobProcessor]] = {
    "send_email": SendEmailProcessor,
    "webhook": WebhookProcessor,
    "process_data": ProcessDataProcessor,
    "django_task": DjangoTaskProcessor,
    "django_task_async": AsyncDjangoTaskProcessor,
}


def register_builtin_processors(target: Registry = registry) -> None:
    """Register each built-in processor under its type unless that type already has a processor."""
    for job_type, processor_class in BUILTIN_PROCESSORS.items():
        if job_type not in target:
            target.register(job_type, processor_class())


register_builtin_processors()

__all__ = [
    "BUILTIN_PROCESSORS",
    "ProcessDataProcessor",
    "SendEmailProcessor",
    "WebhookProcessor",
    "register_builtin_processors",
]
