"""Which queues a worker takes jobs from, and in what order.

``high,default,low`` is strict: a lower queue is asked only when every higher one is empty.
``*`` takes every queue there is (as Redis knows them, looked up again every few seconds), in
name order; it is what ``make run`` uses, so that a first look runs whatever queue a job names.
``high:3,default:1`` is weighted: each claim round orders the queues by a weighted random draw,
so ``high`` goes first three times as often as ``default`` and no queue starves.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from jobs.validation import is_queue_name


class QueueSpecError(ValueError):
    """A ``--queues`` value that cannot be used."""


@dataclass(frozen=True)
class QueueSelector:
    names: tuple[str, ...]
    weights: tuple[int, ...] | None = None
    every_queue: bool = False

    @property
    def weighted(self) -> bool:
        return self.weights is not None

    def order(self, rng: random.Random | None = None) -> list[str]:
        """The queues to ask, in order, for one claim round."""
        if self.weights is None:
            return list(self.names)
        draw = rng.uniform if rng is not None else random.uniform
        remaining = list(zip(self.names, self.weights, strict=True))
        ordered = []
        while remaining:
            total = sum(w for _, w in remaining)
            pick = draw(0, total)
            for index, (name, weight) in enumerate(remaining):
                pick -= weight
                if pick <= 0 or index == len(remaining) - 1:
                    ordered.append(name)
                    remaining.pop(index)
                    break
        return ordered


MAX_WEIGHT = 10_000
# What follows the last ":" of an item is meant as a weight when it starts like a number (queue
# names may hold ":" too: "emails:eu" is a name); such a weight must then be a whole number.
_WEIGHT_LIKE = re.compile(r"[-+.]?[0-9][0-9a-zA-Z.+-]*")
_WEIGHT = re.compile(r"[0-9]{1,5}")


def parse_queues(text: str) -> QueueSelector:
    """Parse ``a,b,c`` (strict), ``a:3,b:1`` (weighted; all items weighted or none) or ``*`` (every queue)."""
    if text.strip() == "*":
        return QueueSelector((), None, every_queue=True)
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise QueueSpecError(f"--queues={text!r}: name at least one queue")
    names, weights = [], []
    for item in items:
        name, colon, weight = item.rpartition(":")
        if colon and (not name or not weight or _WEIGHT_LIKE.fullmatch(weight)):
            if not name or not weight:
                raise QueueSpecError(f"--queues={text!r}: {item!r} needs a queue name and a weight (name:3)")
            if not _WEIGHT.fullmatch(weight) or not 1 <= int(weight) <= MAX_WEIGHT:
                raise QueueSpecError(
                    f"--queues={text!r}: weight of {name!r} must be a whole number from 1 to {MAX_WEIGHT}"
                )
            names.append(name)
            weights.append(int(weight))
        else:
            names.append(item)
    for name in names:
        if not is_queue_name(name):
            raise QueueSpecError(f"--queues={text!r}: {name!r} is not a queue name")
    if len(set(names)) != len(names):
        raise QueueSpecError(f"--queues={text!r}: a queue is named twice")
    if weights and len(weights) != len(names):
        raise QueueSpecError(f"--queues={text!r}: give every queue a weight, or none")
    return QueueSelector(tuple(names), tuple(weights) if weights else None)
