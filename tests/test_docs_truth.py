"""What the docs and docstrings promise is what the code and the tests hold."""

from __future__ import annotations

import re
from pathlib import Path

from redis.crc import key_slot

from jobs.broker import Broker

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCE_DIRS = ("jobs", "workers", "scheduler", "zipline_site", "bench", "deploy")


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _docs_and_sources() -> list[Path]:
    sources = [
        path
        for directory in SOURCE_DIRS
        for path in sorted((ROOT / directory).rglob("*"))
        if path.suffix in {".py", ".lua", ".md", ".yaml", ".yml"} and path.is_file()
    ]
    return [*DOCS, *sources]


def test_redis_cluster_is_mentioned_only_to_say_it_is_not_supported() -> None:
    claims = [
        f"{path.relative_to(ROOT)}: {paragraph.strip()[:200]}"
        for path in _docs_and_sources()
        for paragraph in _paragraphs(path.read_text(encoding="utf-8"))
        if re.search(r"\bCluster\b", paragraph) and "not supported" not in paragraph
    ]
    assert not claims, "Redis Cluster is not supported yet; these paragraphs say otherwise:\n" + "\n".join(claims)


def test_a_queue_s_keys_share_one_slot_and_a_wait_on_several_queues_spans_slots(broker: Broker) -> None:
    """The two facts the docs state about Cluster: each script stays in one slot, the workers' BLPOP does not."""
    for queue in ("default", "high", "emails"):
        keys = broker.keys(queue)
        names = [keys.ready, keys.delayed, keys.prio, keys.seq, keys.notify, keys.leases, keys.tokens, keys.paused]
        assert len({key_slot(name.encode()) for name in names}) == 1, queue
    notify_slots = {key_slot(broker.keys(queue).notify.encode()) for queue in ("high", "default", "low")}
    assert len(notify_slots) == 3
