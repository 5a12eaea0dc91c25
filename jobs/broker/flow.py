"""The broker's read of flow control for operators (``lua/flow_stats.lua``): each queue's depths
(``ready`` counting every lane) and what the limits hold back now, one script call per queue, all
queues in one round trip. A read, not a transition: the claim script alone changes these keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobs.broker.errors import translated_methods
from jobs.broker.items import FlowStats

MAX_LANES_READ = 10_000  # lanes counted at most per queue and call, so a read stays short however many
MAX_LEASES_READ = 10_000  # running jobs read at most per queue, to count them by lane


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Sequence[Any]) -> tuple[tuple[str, int], ...]:
    return tuple((_text(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2))


def _stats(reply: Sequence[Any]) -> FlowStats:
    flow, now, waiting, delayed, leased, paused, in_turn, lanes, parked, blocked, running, qrun, tat, cut = reply
    return FlowStats(
        flow=bool(flow),
        now_ms=int(now),
        waiting=int(waiting),
        delayed=int(delayed),
        leased=int(leased),
        paused=bool(paused),
        in_turn=int(in_turn),
        lanes=int(lanes),
        parked=_pairs(parked),
        blocked=tuple((_text(blocked[i]), int(blocked[i + 1]), int(blocked[i + 2])) for i in range(0, len(blocked), 3)),
        running=_pairs(running),
        queue_running=int(qrun),
        queue_tat_ms=float(_text(tat)) if tat else None,
        cut_short=bool(cut),
    )


@translated_methods
class FlowReads:
    """Mixed into :class:`~jobs.broker.core.Broker` (which owns ``keys``, ``clock`` and ``_run_many``)."""

    def flow_stats(self, queues: Sequence[str]) -> dict[str, FlowStats]:
        """Each queue's depths and flow state, in one round trip (one call each on a cluster)."""
        broker: Any = self
        calls = []
        for queue in queues:
            k = broker.keys(queue)
            keys = (k.ready, k.delayed, k.leases, k.paused, k.flow)
            calls.append(("flow_stats", keys, (broker.clock.script_ms(), MAX_LANES_READ, MAX_LEASES_READ)))
        return {queue: _stats(reply) for queue, reply in zip(queues, broker._run_many(calls), strict=True)}
