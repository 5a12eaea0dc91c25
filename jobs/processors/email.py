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

from jobs.registry import Context, PermanentError, RetryDefaults

if TYPE_CHECKING:
    from jobs.models import Job

MAX_SUBJECT_CHARS = 998  # the longest line RFC 5322 allows


def parse_payload(payload: Any) -> tuple[str, str, str]:
    """Validate a ``send_email`` payload into (email, subject, body); a bad one raises PermanentError."""
    if not isinstance(payload, Mapping):
        raise PermanentError("payload: expected an object with email, subject and body")
    email = payload.get("email")
    if not isinstance(email, str) or not email.strip():
        raise PermanentError("email: expected an email address")
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise PermanentError(f"email: {email!r} is not a valid email address") from None
    subject = payload.get("subject")
    if not isinstance(subject, str):
        raise PermanentError("subject: expected a string")
    if "\r" in subject or "\n" in subject:
        raise PermanentError("subject: must be one line (no line breaks)")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise PermanentError(f"subject: longer than {MAX_SUBJECT_CHARS} characters")
    body = payload.get("body")
    if not isinstance(body, str):
        raise PermanentError("body: expected a string")
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
