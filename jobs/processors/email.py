"""The ``send_email`` job: one plain-text message sent with Django's mail backend (SMTP from ``JQS_EMAIL_*``).

The sender is ``DEFAULT_FROM_EMAIL`` (``JQS_EMAIL_FROM``), never the payload, so a job cannot forge it.
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email

from jobs.registry import Context, PayloadError, PermanentError, RetryDefaults

if TYPE_CHECKING:
    from jobs.models import Job

MAX_SUBJECT_CHARS = 998  # the longest line RFC 5322 allows
DEFAULT_SUBJECT = ""
DEFAULT_BODY = ""


def parse_payload(payload: Any) -> tuple[str, str, str]:
    """Validate a ``send_email`` payload into (email, subject, body); a bad one raises PayloadError.

    ``subject`` and ``body`` may be left out (the seed's load test sends only ``email``): both default
    to an empty string. Run at submit (``validate_payload``) and again when the job runs.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("", "expected an object with email, subject and body")
    email = payload.get("email")
    if not isinstance(email, str) or not email.strip():
        raise PayloadError("email", f"expected an email address, not {email!r}")
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise PayloadError("email", f"{email!r} is not a valid email address") from None
    subject = payload.get("subject", DEFAULT_SUBJECT)
    if not isinstance(subject, str):
        raise PayloadError("subject", f"expected a string, not {subject!r}")
    if "\r" in subject or "\n" in subject:
        raise PayloadError("subject", "must be one line (no line breaks)")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise PayloadError("subject", f"longer than {MAX_SUBJECT_CHARS} characters")
    body = payload.get("body", DEFAULT_BODY)
    if not isinstance(body, str):
        raise PayloadError("body", f"expected a string, not {body!r}")
    return email, subject, body


def _permanently_refused(exc: smtplib.SMTPRecipientsRefused) -> bool:
    """True when the server refused every recipient with a 5xx code: retrying will not change its mind."""
    codes = [code for code, _message in exc.recipients.values()]
    return bool(codes) and all(500 <= code < 600 for code in codes)


class SendEmailProcessor:
    """Runs ``send_email`` jobs. SMTP trouble fails the attempt (it may be retried); a bad payload or a
    recipient the server refuses for good fails the job at once."""

    name = "send_email"
    timeout = 60.0
    retry = RetryDefaults(max_retries=5, initial_delay=10.0)

    def can_process(self, job_type: str) -> bool:
        return job_type == self.name

    def validate_payload(self, payload: dict[str, Any]) -> None:
        parse_payload(payload)

    def process(self, job: Job, ctx: Context) -> dict[str, Any]:
        email, subject, body = parse_payload(job.payload)
        ctx.check()
        message = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[email])
        try:
            sent = message.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as exc:
            if _permanently_refused(exc):
                code, reason = next(iter(exc.recipients.values()))
                text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
                raise PermanentError(f"email: the mail server refused {email}: {code} {text}") from exc
            raise
        if sent != 1:
            raise RuntimeError(f"the mail backend did not send the message to {email}")
        ctx.logger.info("email sent to %s", email)
        return {"sent": 1, "to": email}
