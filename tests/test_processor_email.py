"""The send_email processor against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from jobs.processors.email import SendEmailProcessor
from jobs.registry import Context, JobCancelled, PermanentError, registry
from tests.helpers import make_context, run_processor
from tests.procs import free_port


def make_ctx() -> Context:
    return make_context()


def run(payload: Any, ctx: Context | None = None) -> dict[str, Any]:
    return run_processor(SendEmailProcessor(), payload, ctx)


class Collector:
    """An aiosmtpd handler that keeps every message and refuses recipients at refused.example."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:  # noqa: N802 (aiosmtpd hook name)
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook name)
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[Collector]:
    handler = Collector()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=port,
            EMAIL_HOST_USER="",
            EMAIL_HOST_PASSWORD="",
            EMAIL_USE_TLS=False,
            EMAIL_USE_SSL=False,
            EMAIL_TIMEOUT=10,
            DEFAULT_FROM_EMAIL="zipline@example.com",
        ):
            yield handler
    finally:
        controller.stop()


def test_sends_the_message(smtp: Collector) -> None:
    result = run({"email": "ada@example.com", "subject": "Hello Ada", "body": "Line one\nLine two — ünïcode"})
    assert result == {"sent": 1, "to": "ada@example.com"}
    assert len(smtp.messages) == 1
    envelope = smtp.messages[0]
    assert envelope.mail_from == "zipline@example.com"
    assert envelope.rcpt_tos == ["ada@example.com"]
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "Hello Ada"
    assert message["To"] == "ada@example.com"
    assert message["From"] == "zipline@example.com"
    assert message.get_content().replace("\r\n", "\n").rstrip("\n") == "Line one\nLine two — ünïcode"


def test_recipient_refused_for_good_is_permanent(smtp: Collector) -> None:
    with pytest.raises(PermanentError, match="refused nobody@refused.example: 550"):
        run({"email": "nobody@refused.example", "subject": "s", "body": "b"})
    assert smtp.messages == []


def test_unreachable_server_fails_the_attempt() -> None:
    port = free_port()
    with (
        override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=port,
            EMAIL_TIMEOUT=5,
        ),
        pytest.raises(OSError) as info,
    ):
        run({"email": "ada@example.com", "subject": "s", "body": "b"})
    assert not isinstance(info.value, PermanentError)


def test_cancelled_job_sends_nothing(smtp: Collector) -> None:
    ctx = make_ctx()
    ctx.cancel("stop")
    with pytest.raises(JobCancelled):
        run({"email": "ada@example.com", "subject": "s", "body": "b"}, ctx)
    assert smtp.messages == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (["not", "an", "object"], "payload"),
        ({"subject": "s", "body": "b"}, "email"),
        ({"email": 5, "subject": "s", "body": "b"}, "email"),
        ({"email": "not-an-address", "subject": "s", "body": "b"}, "email"),
        ({"email": "a@b.com\nBcc: x@y.com", "subject": "s", "body": "b"}, "email"),
        ({"email": "a@example.com", "subject": 1, "body": "b"}, "subject"),
        ({"email": "a@example.com", "subject": "s\r\nBcc: x@y.com", "body": "b"}, "subject"),
        ({"email": "a@example.com", "subject": "s", "body": {"x": 1}}, "body"),
    ],
)
def test_bad_payload_is_a_permanent_error_naming_the_field(payload: Any, field: str) -> None:
    with pytest.raises(PermanentError) as info:
        run(payload)
    assert str(info.value).startswith(f"{field}:")


def test_subject_and_body_default_to_empty_as_in_the_seeds_load_test(smtp: Collector) -> None:
    assert run({"email": "test7@example.com"}) == {"sent": 1, "to": "test7@example.com"}
    message = smtp.messages[0].content.decode()
    headers, body = message.split("\r\n\r\n", 1)
    assert "\r\nSubject: \r\n" in headers and body == ""


def test_registered_under_send_email() -> None:
    processor = registry.get("send_email")
    assert isinstance(processor, SendEmailProcessor)
    assert processor.can_process("send_email") and not processor.can_process("webhook")
