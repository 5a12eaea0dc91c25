"""What flow control holds back right now, read from a flow queue's keys (``lua/includes/lanes.lua``),
for the API: the jobs running against the queue's concurrency, and the lanes and jobs held by a
limit. A read for operators, not a transition: the claim script alone changes these keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from jobs.broker.core import Broker
from jobs.broker.errors import translated
from jobs.broker.keys import flow_key

HELD_LANES_READ = 1000  # lanes counted at most per call, so a read stays short however many are held


@dataclass(frozen=True)
class FlowState:
    """Running jobs (those of the flow path), lanes in turn, lanes held by a slot or a rate, jobs in
    the held lanes (counted over at most :data:`HELD_LANES_READ` lanes)."""

    running: int
    lanes: int
    lanes_waiting_for_a_slot: int
    lanes_waiting_for_a_rate: int
    held_jobs: int

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@translated
def flow_state(broker: Broker, queue: str) -> FlowState:
    client: Any = broker.client
    k = broker.keys(queue)
    pipe = client.pipeline(transaction=False)
    pipe.zcard(flow_key(k.tag, "run"))
    pipe.zcard(flow_key(k.tag, "lanes"))
    pipe.zrange(flow_key(k.tag, "parked"), 0, HELD_LANES_READ - 1)
    pipe.smembers(flow_key(k.tag, "blockers"))
    running, lanes, parked, blockers = pipe.execute()
    blocked: set[str] = set()
    for slot in sorted(_text(b) for b in blockers):
        if len(blocked) >= HELD_LANES_READ:
            break
        blocked.update(_text(m) for m in cast(set[bytes], client.smembers(flow_key(k.tag, "blocked", slot))))
    held = {_text(p) for p in parked} | blocked
    pipe = client.pipeline(transaction=False)
    for lane in sorted(held)[:HELD_LANES_READ]:
        pipe.zcard(k.ready if lane == "" else flow_key(k.tag, "lane", lane))
    return FlowState(int(running), int(lanes), len(blocked), len(parked), sum(int(n) for n in pipe.execute()))
