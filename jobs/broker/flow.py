"""The broker's reads of flow control: for operators (``lua/flow_stats.lua``), each queue's depths
(``ready`` counting every lane) and what the limits hold back now, one script call per queue, all
queues in one round trip; for the reconciler, every lane of a flow queue and the ids in it, a batch
at a time. Reads, not transitions: the scripts alone change these keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

from jobs.broker.errors import translated_methods
from jobs.broker.items import FlowStats
from jobs.broker.keys import flow_key

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

    def flow_lanes(self, queue: str, batch: int) -> Iterator[list[str]]:
        """Every lane of a flow queue but the default one (``ready``), a batch at a time: those taking
        turns, parked by a rate and waiting for a slot (``includes/lanes.lua``: a lane that holds jobs is
        in one of them). Each lane once."""
        broker: Any = self
        client, tag = broker.client, broker.keys(queue).tag
        seen: set[str] = {""}
        sources = [
            client.zscan_iter(flow_key(tag, "lanes"), count=batch),
            client.zscan_iter(flow_key(tag, "parked"), count=batch),
        ]
        for slot in cast(Iterator[Any], client.sscan_iter(flow_key(tag, "blockers"), count=batch)):
            sources.append(client.sscan_iter(flow_key(tag, "blocked", _text(slot)), count=batch))
        found: list[str] = []
        for source in sources:
            for member in source:
                lane = _text(member[0] if isinstance(member, tuple) else member)
                if lane not in seen:
                    seen.add(lane)
                    found.append(lane)
                if len(found) >= batch:
                    yield found
                    found = []
        if found:
            yield found

    def scan_lane(self, queue: str, lane: str, batch: int) -> Iterator[list[str]]:
        """The ids waiting in one lane, a batch at a time (ZSCAN: no long command however long the lane)."""
        broker: Any = self
        key = flow_key(broker.keys(queue).tag, "lane", lane)
        cursor = 0
        while True:
            cursor, members = broker.client.zscan(key, cursor, count=batch)
            if members:
                yield [_text(member) for member, _score in members]
            if cursor == 0:
                return
