"""Flow control in the Lua scripts on a real Redis, time driven (DrivenClock): lanes take turns,
concurrency slots and rate buckets hold lanes back without blocking the others, and faults free
or rebuild what they must (docs/flow-control.md)."""

from __future__ import annotations

from django.conf import settings

from jobs.broker import Broker, PushItem, RestoreItem, Settlement
from jobs.broker.items import NO_LIMITS, FlowLimits, Limit
from jobs.limits import effective_burst, limit, parse_rate
from tests.helpers import DrivenClock

LEASE = 30_000


def push(broker: Broker, group: str, n: int, priority: int = 0, queue: str = "q") -> list[str]:
    ids = [f"{group or 'none'}-{i}" for i in range(n)]
    broker.push([PushItem(queue, i, priority, 0, group) for i in ids])
    return ids


def claim(broker: Broker, count: int, limits: FlowLimits = NO_LIMITS, worker: str = "w") -> list[str]:
    return broker.claim("q", worker, count, LEASE, limits=limits).ids


def group_conc(n: int) -> FlowLimits:
    return FlowLimits(group=Limit(concurrency=n))


def test_a_group_with_many_jobs_delays_another_by_at_most_one_turn(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 1000)
    push(broker, "b", 3)
    first = [claim(broker, 1)[0] for _ in range(6)]
    assert [i[0] for i in first] == ["a", "b", "a", "b", "a", "b"]


def test_a_group_that_arrives_late_takes_the_next_turn(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 100)
    assert len(claim(broker, 10)) == 10
    push(broker, "b", 2)
    assert {i[0] for i in claim(broker, 2)} == {"a", "b"}


def test_jobs_without_a_group_form_one_group_of_their_own(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 10)
    push(broker, "", 10)
    taken = claim(broker, 4)
    assert sorted(i.split("-")[0] for i in taken) == ["a", "a", "none", "none"]


def test_priorities_order_the_jobs_within_a_group(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", "low", -5, 0, "g"), PushItem("q", "high", 50, 0, "g"), PushItem("q", "mid", 0, 0, "g")])
    assert claim(broker, 3) == ["high", "mid", "low"]


def test_group_concurrency_holds_a_group_and_lets_the_others_run(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 5)
    push(broker, "b", 5)
    taken = claim(broker, 10, group_conc(1))
    assert sorted(taken) == ["a-0", "b-0"]
    assert claim(broker, 10, group_conc(1)) == []
    broker.settle("q", "w", [Settlement("a-0", "ack")])
    assert claim(broker, 10, group_conc(1)) == ["a-1"]


def test_a_second_claim_cannot_take_the_last_slot_twice(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 5)
    limits = FlowLimits(queue=Limit(concurrency=1))
    assert claim(broker, 5, limits, worker="pool-1") == ["a-0"]
    assert claim(broker, 5, limits, worker="pool-2") == []


def test_queue_concurrency_is_never_exceeded(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "", 20)
    limits = FlowLimits(queue=Limit(concurrency=3))
    running = claim(broker, 10, limits)
    assert len(running) == 3
    for job_id in running[:2]:
        broker.settle("q", "w", [Settlement(job_id, "ack")])
    assert len(claim(broker, 10, limits)) == 2
    assert claim(broker, 10, limits) == []


def test_a_released_job_goes_back_to_the_front_of_its_lane(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 3)
    [first] = claim(broker, 1, group_conc(1))
    broker.settle("q", "w", [Settlement(first, "release")])
    assert claim(broker, 1, group_conc(1)) == [first]


def test_group_rate_spaces_the_starts_and_says_when_to_come_back(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 10)
    push(broker, "b", 1)
    limits = FlowLimits(group=Limit(interval_ms=100.0, burst=1))  # 10/s per group
    assert sorted(claim(broker, 10, limits)) == ["a-0", "b-0"]
    held = broker.claim("q", "w", 10, LEASE, limits=limits)
    assert held.ids == [] and held.next_due_ms is not None and 0 < held.next_due_ms <= 100
    clock.advance(99)
    assert claim(broker, 10, limits) == []
    clock.advance(1)
    assert claim(broker, 10, limits) == ["a-1"]


def test_a_burst_lets_that_many_start_at_once(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "", 10)
    limits = FlowLimits(queue=Limit(interval_ms=1000.0, burst=3))
    assert len(claim(broker, 10, limits)) == 3
    clock.advance(1000)
    assert len(claim(broker, 10, limits)) == 1


def test_a_fast_rate_without_a_burst_starts_ten_milliseconds_of_jobs_at_once(
    broker: Broker, clock: DrivenClock
) -> None:
    """1000/s with no burst set: a claim 10 ms after the last takes 10 jobs, so claims milliseconds apart
    keep the rate; a slow rate keeps a burst of one."""
    assert effective_burst(parse_rate("rate", "1000/s"), None) == 10
    assert effective_burst(parse_rate("rate", "50/s"), None) == 1
    assert effective_burst(parse_rate("rate", "1000/s"), 2) == 2 and effective_burst(None, None) == 1
    # JQS_LIMITS_QUEUE_BURST and _GROUP_BURST default to 0: the rate's own default, as unset.
    assert (settings.ZIPLINE.limits.queue_burst, settings.ZIPLINE.limits.group_burst) == (0, 0)
    assert effective_burst(parse_rate("rate", "1000/s"), 0) == 10
    push(broker, "", 40)
    limits = FlowLimits(queue=limit(None, parse_rate("rate", "1000/s"), None))
    assert len(claim(broker, 40, limits)) == 10
    clock.advance(3)
    assert len(claim(broker, 40, limits)) == 3
    clock.advance(1000)
    assert len(claim(broker, 40, limits)) == 10


def test_queue_rate_over_a_driven_minute(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "", 200)
    push(broker, "g", 200)
    limits = FlowLimits(queue=Limit(interval_ms=20.0, burst=1))  # 50/s
    started = 0
    for _ in range(100):  # two seconds in steps of 20 ms
        started += len(claim(broker, 64, limits))
        clock.advance(20)
    assert started == 100


def test_type_limits_hold_their_type_only(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", f"mail-{i}", 0, 0, "mail\n") for i in range(5)])
    push(broker, "", 5)
    limits = FlowLimits(types=(("mail", Limit(concurrency=2)),))
    taken = claim(broker, 10, limits)
    assert sum(i.startswith("mail") for i in taken) == 2
    assert sum(i.startswith("none") for i in taken) == 5


def test_a_type_limit_within_a_group(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", f"g1-mail-{i}", 0, 0, "mail\ng1") for i in range(3)])
    broker.push([PushItem("q", f"g2-mail-{i}", 0, 0, "mail\ng2") for i in range(3)])
    limits = FlowLimits(types=(("mail", Limit(concurrency=1)),))
    [one] = claim(broker, 10, limits)
    assert claim(broker, 10, limits) == []
    broker.settle("q", "w", [Settlement(one, "ack")])
    assert len(claim(broker, 10, limits)) == 1


def test_an_expired_lease_frees_its_slot_and_reclaim_wakes_the_group(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 3)
    assert claim(broker, 5, group_conc(1), worker="killed") == ["a-0"]
    assert claim(broker, 5, group_conc(1)) == []
    clock.advance(LEASE + 1)
    assert [lease.job_id for lease in broker.reclaim_expired("q", 10)] == ["a-0"]
    assert claim(broker, 5, group_conc(1)) == ["a-1"]


def test_a_renewed_lease_keeps_its_slot(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 3)
    assert claim(broker, 5, group_conc(1)) == ["a-0"]
    clock.advance(LEASE - 1000)
    assert broker.renew("q", "w", ["a-0"], LEASE) == []
    clock.advance(2000)
    assert claim(broker, 5, group_conc(1)) == []


def test_restored_leases_count_against_concurrency(broker: Broker, clock: DrivenClock) -> None:
    broker.restore(
        "q",
        [RestoreItem("r1", "lease", worker_id="w", lane="a"), RestoreItem("p1", "ready", lane="a")],
        LEASE,
        limited=True,
    )
    assert claim(broker, 5, group_conc(1)) == []
    broker.settle("q", "w", [Settlement("r1", "ack")])
    assert claim(broker, 5, group_conc(1)) == ["p1"]


def test_a_restored_lease_counts_against_queue_concurrency_before_any_claim(broker: Broker, clock: DrivenClock) -> None:
    broker.restore("q", [RestoreItem("r1", "lease", worker_id="w"), RestoreItem("p1", "ready")], LEASE, limited=True)
    assert claim(broker, 5, FlowLimits(queue=Limit(concurrency=1))) == []


def test_delayed_jobs_join_their_lane_when_due(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", "later", 0, clock.ms + 500, "a")])
    push(broker, "b", 1)
    assert claim(broker, 5) == ["b-0"]
    clock.advance(500)
    assert claim(broker, 5) == ["later"]


def test_removed_jobs_leave_their_lane(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 2)
    assert broker.remove("q", ["a-0"]) == 1
    assert claim(broker, 5) == ["a-1"]


def test_a_queue_without_lanes_or_limits_keeps_the_fast_path(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "", 3)
    assert len(claim(broker, 5)) == 3
    assert not broker.client.exists(broker.keys("q").flow)


def test_late_claims_keep_the_rate_on_average_without_passing_rate_plus_burst(
    broker: Broker, clock: DrivenClock
) -> None:
    from tests.flow_ledger import busiest_second

    push(broker, "", 300)
    limits = FlowLimits(queue=Limit(interval_ms=20.0, burst=1))  # 50/s
    begin, starts = clock.ms, []
    for step in range(1000):
        got = broker.claim("q", "w", 64, LEASE, limits=limits)
        starts += [clock.ms / 1000] * len(got.ids)
        if clock.ms - begin >= 4000:
            break
        assert got.next_due_ms is not None
        clock.advance(got.next_due_ms + step % 5)  # each claim comes 0 to 4 ms after its turn
    assert 199 <= len(starts) <= 201, len(starts)
    assert busiest_second(starts) <= 51


def test_jobs_running_before_a_queue_limit_count_against_it(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "", 5)
    assert len(claim(broker, 2)) == 2  # the fast path: no limit yet
    limits = FlowLimits(queue=Limit(concurrency=2))
    assert claim(broker, 5, limits) == []


def test_a_weighted_group_takes_more_turns(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 50)
    push(broker, "b", 50)
    limits = FlowLimits(weights=(("a", 3),))
    taken = [claim(broker, 1, limits)[0][0] for _ in range(16)]
    assert taken.count("a") == 12 and taken.count("b") == 4


def test_a_raised_limit_lets_waiting_lanes_go_on_within_a_second(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "a", 5)
    assert claim(broker, 5, group_conc(1)) == ["a-0"]
    assert claim(broker, 5, group_conc(1)) == []  # the lane waits for the group's slot
    clock.advance(1000)
    broker.client.delete(broker.keys("q").tag + ":rechecked")  # its second has passed (a real-time TTL)
    assert claim(broker, 5, group_conc(3)) == ["a-1", "a-2"]


def test_group_limits_leave_jobs_without_a_group_to_the_queue_limits(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "", 5)
    push(broker, "a", 5)
    taken = claim(broker, 10, group_conc(1))
    assert sum(i.startswith("none") for i in taken) == 5 and sum(i.startswith("a") for i in taken) == 1


def test_a_type_limit_counts_within_each_queue(broker: Broker, clock: DrivenClock) -> None:
    limits = FlowLimits(types=(("mail", Limit(concurrency=1)),))
    for queue in ("q", "q2"):
        broker.push([PushItem(queue, f"{queue}-{i}", 0, 0, "mail\n") for i in range(3)])
    assert len(broker.claim("q", "w", 5, LEASE, limits=limits).ids) == 1
    assert len(broker.claim("q2", "w", 5, LEASE, limits=limits).ids) == 1


def test_type_limits_alone_keep_a_queue_without_type_lanes_on_the_fast_path(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "", 3)
    limits = FlowLimits(types=(("mail", Limit(concurrency=1)),))
    assert len(claim(broker, 5, limits)) == 3
    assert not broker.client.exists(broker.keys("q").flow)
