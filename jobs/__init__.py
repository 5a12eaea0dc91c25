"""ZipLine's jobs app: job records, the state machine, the Redis queue, processors and the Python API.

The Python API is importable from here (``from jobs import enqueue``); it is loaded lazily so that
importing the app does not touch the models before Django is ready.
"""

from typing import Any

_CLIENT = {
    "cancel",
    "enqueue",
    "enqueue_many",
    "get",
    "retry",
    "JobSpec",
    "workflow",
    "chain",
    "group",
    "get_workflow",
    "create_batch",
    "close_batch",
    "cancel_batch",
    "get_batch",
}
__all__ = [*sorted(_CLIENT), "processor", "registry"]


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        from jobs import client

        return getattr(client, name)
    if name in {"processor", "registry"}:
        from jobs import registry as registry_module

        return getattr(registry_module, name)
    raise AttributeError(name)
