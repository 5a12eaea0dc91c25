"""``--queues`` (strict, weighted, ``*``, one-line refusals) and how ``--concurrency`` splits over processes."""

from __future__ import annotations

import random

import pytest

from workers.selection import QueueSpecError, parse_queues
from workers.supervisor import slot_plan


def test_strict_weighted_and_every_queue() -> None:
    assert parse_queues("high,default,low").names == ("high", "default", "low")
    assert parse_queues("high,default").weights is None
    weighted = parse_queues("high:3, default:1")
    assert (weighted.names, weighted.weights) == (("high", "default"), (3, 1))
    assert parse_queues("*").every_queue


def test_a_colon_in_a_queue_name_is_a_name_unless_a_number_follows() -> None:
    assert parse_queues("emails:eu,emails:us").names == ("emails:eu", "emails:us")
    weighted = parse_queues("emails:eu:2,emails:us:1")
    assert (weighted.names, weighted.weights) == (("emails:eu", "emails:us"), (2, 1))


def test_weighted_order_favours_the_heavier_queue() -> None:
    selector = parse_queues("high:3,low:1")
    rng = random.Random(7)
    firsts = [selector.order(rng)[0] for _ in range(4000)]
    assert 0.70 < firsts.count("high") / len(firsts) < 0.80  # 3 in 4


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "name at least one queue"),
        (",", "name at least one queue"),
        ("a:0", "weight of 'a' must be a whole number from 1 to 10000"),
        ("a:-1", "weight of 'a' must be a whole number from 1 to 10000"),
        ("a:1e9", "weight of 'a' must be a whole number from 1 to 10000"),
        ("a:1.5", "weight of 'a' must be a whole number from 1 to 10000"),
        ("a:99999999999999999999999", "weight of 'a' must be a whole number from 1 to 10000"),
        ("a:", "'a:' needs a queue name and a weight"),
        (":1", "':1' needs a queue name and a weight"),
        ("a:\u00b2", "'a:\u00b2' is not a queue name"),  # a superscript two is not a weight
        ("a:1,b", "give every queue a weight, or none"),
        ("a,a", "a queue is named twice"),
        ("caf\u00e9", "is not a queue name"),
    ],
)
def test_a_bad_selection_is_one_line_naming_it(text: str, words: str) -> None:
    with pytest.raises(QueueSpecError) as caught:
        parse_queues(text)
    message = str(caught.value)
    assert message.startswith(f"--queues={text!r}: ") and words in message and "\n" not in message


@pytest.mark.parametrize(
    ("concurrency", "processes", "plan"),
    [(100, 2, [50, 50]), (5, 2, [3, 2]), (2, 4, [1, 1]), (1, 1, [1]), (7, 3, [3, 2, 2])],
)
def test_the_slots_add_up_to_the_concurrency_asked(concurrency: int, processes: int, plan: list[int]) -> None:
    assert slot_plan(concurrency, processes) == plan
