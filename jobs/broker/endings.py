"""Jobs that ended, told over Redis Pub/Sub: whoever ends jobs publishes their ids (one PUBLISH per
batch, after the commit), and each API process listens on one subscription to wake the requests that
wait on a job (``GET /api/v1/jobs/{id}?wait=30s``, :mod:`jobs.service.watch`).

Pub/Sub keeps nothing: a subscriber that is not connected when a message is published never sees it.
So a listener that (re)subscribes must assume it missed some, and its owner re-checks every waiter
then (:meth:`EndingsListener.subscribe` returns only once Redis confirmed the subscription).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from jobs.broker.errors import translated, translated_methods
from jobs.broker.keys import endings_channel

SEPARATOR = " "


@translated_methods
class EndingsListener:
    """One subscription to the endings channel; used by one thread."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        self.channel = channel

    def subscribe(self, timeout: float) -> None:
        """Subscribe and wait for Redis to confirm it (no message published after this returns is lost)."""
        self.pubsub.subscribe(self.channel)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.pubsub.get_message(timeout=remaining)
            if message is not None and message.get("type") == "subscribe":
                return
        raise redis.TimeoutError(f"no confirmation of the subscription to {self.channel} in {timeout}s")

    def next(self, timeout: float) -> list[str]:
        """The ids of the next message published, or [] when none came within ``timeout`` seconds."""
        message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if message is None or message.get("type") != "message":
            return []
        data = message["data"]
        text = data.decode() if isinstance(data, bytes) else str(data)
        return [one for one in text.split(SEPARATOR) if one]

    def close(self) -> None:
        self.pubsub.close()


class EndingsMixin:
    """The :class:`jobs.broker.Broker` methods of the endings channel."""

    client: redis.Redis
    prefix: str

    @translated
    def publish_ended(self, job_ids: Sequence[str]) -> int:
        """Tell the listeners that these jobs ended, in one PUBLISH; returns how many listeners heard it."""
        if not job_ids:
            return 0
        heard: int = self.client.publish(endings_channel(self.prefix), SEPARATOR.join(job_ids))  # type: ignore[assignment]
        return heard

    def listen_ended(self) -> EndingsListener:
        """A new subscription to the endings channel (not yet subscribed: call its ``subscribe``)."""
        return EndingsListener(self.client, endings_channel(self.prefix))
