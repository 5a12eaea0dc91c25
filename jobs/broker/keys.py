"""Every Redis key ZipLine uses, built in one place from the configured prefix.

All keys of one queue share the hash tag ``{queue}`` so that each script touches one hash slot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue's structures (see ``docs/architecture.md``, Redis layout)."""

    ready: str
    delayed: str
    prio: str
    seq: str
    notify: str
    leases: str
    owners: str  # HASH id -> worker id; the key keeps its old name, so leases survive an upgrade
    paused: str
    flow: str
    tag: str


def queue_keys(prefix: str, queue: str) -> QueueKeys:
    tag = f"{prefix}:{{{queue}}}"
    return QueueKeys(
        ready=f"{tag}:ready",
        delayed=f"{tag}:delayed",
        prio=f"{tag}:prio",
        seq=f"{tag}:seq",
        notify=f"{tag}:notify",
        leases=f"{tag}:leases",
        owners=f"{tag}:tokens",
        paused=f"{tag}:paused",
        flow=f"{tag}:flow",
        tag=tag,
    )


def queues_key(prefix: str) -> str:
    return f"{prefix}:queues"


def epoch_key(prefix: str) -> str:
    return f"{prefix}:epoch"


def workers_key(prefix: str) -> str:
    return f"{prefix}:workers"


def worker_key(prefix: str, worker_id: str) -> str:
    return f"{prefix}:worker:{worker_id}"


def lock_key(prefix: str, name: str) -> str:
    return f"{prefix}:scheduler:lock:{name}"


def auth_generation_key(prefix: str) -> str:
    return f"{prefix}:auth:generation"


def rate_key(prefix: str, *parts: str) -> str:
    """A rate-limit counter: under the prefix, then ``rate:`` and the parts."""
    return ":".join((prefix, "rate", *parts))


def flow_key(tag: str, *parts: str) -> str:
    """A flow queue's key (``<tag>:lanes``, ``<tag>:run``, ...), as ``lua/includes/lanes.lua`` builds them."""
    return ":".join((tag, *parts))


def endings_channel(prefix: str) -> str:
    """The Pub/Sub channel on which the ids of jobs that just ended are published (``jobs.broker.endings``)."""
    return f"{prefix}:ended"
