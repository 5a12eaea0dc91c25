"""The built-in processors, registered when the jobs app starts: send_email, webhook, process_data.

Registration only fills types nobody has registered yet, so importing this module again changes nothing
and an app that registered its own processor for one of these types first keeps it.
"""

from __future__ import annotations

from jobs.processors.data import ProcessDataProcessor
from jobs.processors.email import SendEmailProcessor
from jobs.processors.webhook import WebhookProcessor
from jobs.registry import JobProcessor, Registry, registry

BUILTIN_PROCESSORS: dict[str, type[JobProcessor]] = {
    "send_email": SendEmailProcessor,
    "webhook": WebhookProcessor,
    "process_data": ProcessDataProcessor,
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
