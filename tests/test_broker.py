"""The Lua scripts on a real Redis: order, promotion, leases, fencing, and surviving SCRIPT FLUSH."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
import redis

from jobs.broker import Broker, BrokerUnavailable, Promoted, PushItem, RestoreItem, Settlement, due_score
from jobs.broker.scripts import LUA_DIR, SCRIPT_NAMES, ScriptError, expand, source
from tests.helpers import DrivenClock


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def redis_ms(broker: Broker) -> int:
    seconds, micros = cast(tuple[int, int], broker.client.time())
    return seconds * 1000 + micros // 1000


def score(broker: Broker, key: str, job_id: str) -> float | None:
    return cast(float | None, broker.client.zscore(key, job_id))


def test_ready_jobs_come_out_by_priority_then_fifo(broker: Broker) -> None:
    broker.push(
        [
            PushItem("q", "low-1", -5),
            PushItem("q", "mid-1", 0),
            PushItem("q", "high-1", 10),
            PushItem("q", "mid-2", 0),
            PushItem("q", "low-2", -5),
            PushItem("q", "top", 100),
            PushItem("q", "bottom", -100),
        ]
    )
    claim = broker.claim("q", "w1", 10, 30_000)
    assert claim.ids == ["top", "high-1", "mid-1", "mid-2", "low-1", "low-2", "bottom"]


def test_fifo_holds_over_many_jobs(broker: Broker) -> None:
    broker.push([PushItem("q", f"j{i:04d}", 0) for i in range(500)])
    taken: list[str] = []
    while len(taken) < 500:
        taken += broker.claim("q", "w", 64, 30_000).ids
    assert taken == [f"j{i:04d}" for i in range(500)]


def test_delayed_job_is_promoted_only_when_due(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", "later", 0, clock.ms + 300), PushItem("q", "now", 0)])
    first = broker.claim("q", "w", 10, 30_000)
    assert (first.ids, first.next_due_ms) == (["now"], 300)
    clock.advance(299)
    idle = broker.claim("q", "w", 10, 30_000)
    assert (idle.ids, idle.next_due_ms) == ([], 1)
    clock.advance(1)
    assert broker.claim("q", "w", 10, 30_000).ids == ["later"]


def test_promote_moves_at_most_the_limit(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", i, 0, clock.ms) for i in ids("d", 5)])
    # Items due by the time they are pushed go straight to ready; push some in the future too.
    assert broker.depths("q")["ready"] == 5
    broker.push([PushItem("q", i, 0, clock.ms + 200) for i in ids("e", 5)])
    assert broker.promote_due("q", 3) == Promoted(ids=[], next_due_ms=200)
    clock.advance(200)
    assert len(broker.promote_due("q", 3).ids) == 3
    last = broker.promote_due("q", 3)
    assert len(last.ids) == 2 and last.next_due_ms is None


def test_expired_lease_is_reclaimed_with_its_token(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", "a"), PushItem("q", "b")])
    broker.claim("q", "worker-1", 1, 50)
    broker.claim("q", "worker-2", 1, 60_000)
    clock.advance(49)
    assert broker.reclaim_expired("q", 10) == []
    clock.advance(1)
    [expired] = broker.reclaim_expired("q", 10)
    assert (expired.job_id, expired.worker_id) == ("a", "worker-1")
    assert broker.ids("q")["leases"] == {"b"}


@pytest.mark.parametrize(
    "make",
    [lambda: Settlement("a", "acknowledge"), lambda: RestoreItem("a", "leased")],  # type: ignore[arg-type]
    ids=["settle action", "restore kind"],
)
def test_an_unknown_action_or_kind_is_refused_when_made(make: Callable[[], object]) -> None:
    """A typo never reaches a script: settle would take an unknown action for an ack and drop the job from Redis."""
    with pytest.raises(ValueError, match="not '(acknowledge|leased)'"):
        make()


def test_settle_is_fenced_by_the_lease_token(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", "a")])
    broker.claim("q", "stale", 1, 10)
    clock.advance(10)
    broker.reclaim_expired("q", 10)
    broker.push([PushItem("q", "a")])
    broker.claim("q", "fresh", 1, 60_000)
    assert broker.settle("q", "stale", [Settlement("a", "ack")]) == [False]
    assert broker.renew("q", "stale", ["a"], 60_000) == ["a"]
    assert broker.ids("q")["leases"] == {"a"}
    assert broker.settle("q", "fresh", [Settlement("a", "ack")]) == [True]
    assert broker.ids("q") == {"ready": set(), "delayed": set(), "leases": set()}


def test_retry_and_release_settlements(broker: Broker) -> None:
    broker.push([PushItem("q", "r", 5), PushItem("q", "x", 5), PushItem("q", "other", 5)])
    broker.claim("q", "w", 2, 60_000)
    due = int(time.time() * 1000) + 60_000
    assert broker.settle("q", "w", [Settlement("r", "retry", due, 5), Settlement("x", "release", 0, 5)]) == [True, True]
    state = broker.ids("q")
    assert state["delayed"] == {"r"} and state["leases"] == set()
    # A released job goes back to the front of its priority.
    assert broker.claim("q", "w", 2, 60_000).ids == ["x", "other"]


def test_without_a_driven_clock_the_scripts_read_redis_time(broker: Broker) -> None:
    broker.push([PushItem("q", "a")])
    before = redis_ms(broker)
    broker.claim("q", "w", 1, 30_000)
    after = redis_ms(broker)
    deadline = score(broker, broker.keys("q").leases, "a")
    assert deadline is not None and before + 30_000 <= deadline <= after + 30_000


def test_a_driven_clock_sets_lease_deadlines_and_renewals(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("q", "a")])
    broker.claim("q", "w", 1, 30_000)
    assert score(broker, broker.keys("q").leases, "a") == clock.ms + 30_000
    clock.advance(20_000)
    assert broker.renew("q", "w", ["a"], 30_000) == []  # now due at 50 s, not 30 s
    clock.advance(29_999)
    assert broker.reclaim_expired("q", 10) == []
    clock.advance(1)
    assert broker.reclaim_expired("q", 10) == [("a", "w")]


def test_a_retry_is_due_in_redis_exactly_when_its_row_says(broker: Broker) -> None:
    """A retry's due time goes to Redis as the database records it: the reconciler rebuilds the same
    score, and Redis never makes the job due before its row's ``schedule_at``."""
    broker.push([PushItem("q", "r")])
    broker.claim("q", "w", 1, 60_000)
    due_ms = redis_ms(broker) + 5_000
    assert broker.settle("q", "w", [Settlement("r", "retry", due_ms, 0)]) == [True]
    assert score(broker, broker.keys("q").delayed, "r") == due_ms


def test_scripts_read_the_clock_only_through_now_ms_and_argv_1() -> None:
    """One clock: only the ``now`` include calls TIME, and every script that asks it passes ARGV[1]."""
    clocked = [name for name in SCRIPT_NAMES if "now_ms(" in source(name)]
    assert set(clocked) == {"claim", "enqueue", "flow_stats", "promote", "reclaim", "renew", "restore"}
    for name in clocked:
        body = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
        assert "'TIME'" not in body and "now_ms(ARGV[1])" in body, name
        assert body.count("now_ms(") == body.count("now_ms(ARGV[1])"), name


def test_paused_queue_hands_out_nothing(broker: Broker) -> None:
    broker.push([PushItem("q", "a")])
    broker.set_paused("q", True)
    claim = broker.claim("q", "w", 5, 60_000)
    assert claim.ids == [] and claim.paused
    broker.set_paused("q", False)
    assert broker.claim("q", "w", 5, 60_000).ids == ["a"]


def test_wait_and_claim_takes_the_job_that_woke_it(broker: Broker) -> None:
    started = time.monotonic()
    idle = broker.wait_and_claim(["q"], 0.2, "q", "w", 5, 60_000)
    assert idle.ids == [] and time.monotonic() - started >= 0.15
    pusher = threading.Timer(0.1, lambda: broker.push([PushItem("q", "a"), PushItem("q", "b")]))
    pusher.start()
    woken = broker.wait_and_claim(["other", "q"], 5, "q", "w", 1, 60_000)
    pusher.join()
    assert woken.ids == ["a"]
    assert broker.leased_by("q", "w") == ["a"]
    broker.client.script_flush()  # a reloaded script still runs behind the wait
    assert broker.wait_and_claim(["q"], 1, "q", "w", 5, 60_000).ids == ["b"]


def test_wait_and_claim_raises_what_the_wait_raises(broker: Broker) -> None:
    """A failing BLPOP must not pass for an empty poll (the fetcher would spin without backing off)."""
    broker.client.set(broker.keys("q").notify, "not a list")
    with pytest.raises(BrokerUnavailable, match="WRONGTYPE") as raised:
        broker.wait_and_claim(["q"], 0.1, "q", "w", 1, 1000)
    assert isinstance(raised.value.__cause__, redis.ResponseError)


def test_scripts_survive_script_flush(broker: Broker) -> None:
    broker.push([PushItem("q", "a")])
    broker.client.script_flush()
    broker.push([PushItem("q", "b")])
    assert broker.claim("q", "w", 5, 60_000).ids == ["a", "b"]


def test_restore_rebuilds_without_disturbing_existing_entries(broker: Broker) -> None:
    broker.push([PushItem("q", "kept", 0)])
    broker.claim("q", "w", 1, 60_000)
    due = int(time.time() * 1000) + 60_000
    created = broker.restore(
        "q",
        [
            RestoreItem("kept", "ready"),  # leased already: left alone
            RestoreItem("p", "ready", 3),
            RestoreItem("s", "delayed", 0, due_ms=due),
            RestoreItem("r", "lease", worker_id="w2"),
        ],
        60_000,
    )
    assert created == 3
    assert broker.ids("q") == {"ready": {"p"}, "delayed": {"s"}, "leases": {"kept", "r"}}
    assert broker.renew("q", "w2", ["r"], 1000) == []


def test_remove_takes_ids_out_of_ready_and_delayed(broker: Broker) -> None:
    due = int(time.time() * 1000) + 60_000
    broker.push([PushItem("q", "a"), PushItem("q", "b", 0, due)])
    assert broker.remove("q", ["a", "b", "missing"]) == 2
    assert broker.depths("q")["ready"] == 0


def test_keys_share_a_hash_tag_and_the_prefix(broker: Broker) -> None:
    k = broker.keys("emails")
    for key in (k.ready, k.delayed, k.leases, k.owners, k.notify, k.paused, k.seq, k.prio):
        assert key.startswith(f"{broker.prefix}:{{emails}}:")


def test_include_errors_are_reported() -> None:
    with pytest.raises(ScriptError, match="missing include"):
        expand("--- @include no_such_include\n")


def test_a_due_time_is_scored_rounded_up_so_no_job_is_due_before_its_time() -> None:
    # The scripts read the Redis clock in whole milliseconds, rounded down: a score rounded down too
    # would let a job due at 12.3456 s run at 12.345 s.
    base = datetime(2026, 11, 29, 3, 24, 22, tzinfo=UTC)
    epoch_ms = int(base.timestamp()) * 1000
    assert due_score(base) == epoch_ms
    assert due_score(base + timedelta(microseconds=1)) == epoch_ms + 1
    assert due_score(base + timedelta(microseconds=999)) == epoch_ms + 1
    assert due_score(base + timedelta(microseconds=1000)) == epoch_ms + 1
    assert due_score(base + timedelta(microseconds=1001)) == epoch_ms + 2
    assert due_score(base + timedelta(microseconds=345_600)) == epoch_ms + 346
