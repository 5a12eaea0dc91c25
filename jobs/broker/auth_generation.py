"""The API processes' token generation in Redis (``<prefix>:auth:generation``, see
:mod:`jobs.api.token_memory`): a random value replaced on any token or user change."""

from __future__ import annotations

import uuid

from jobs.broker.core import Broker
from jobs.broker.errors import translated
from jobs.broker.keys import auth_generation_key


@translated
def current(broker: Broker) -> str | None:
    """The generation now, made if Redis has none (None only if Redis answers with something else)."""
    key = auth_generation_key(broker.prefix)
    value = broker.client.get(key)
    if value is None:
        broker.client.set(key, uuid.uuid4().hex, nx=True)
        value = broker.client.get(key)
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


@translated
def replace(broker: Broker) -> None:
    """A new random generation: every process forgets the tokens it remembered."""
    broker.client.set(auth_generation_key(broker.prefix), uuid.uuid4().hex)
