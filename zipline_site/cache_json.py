"""The Redis cache's serializer: JSON, never pickle.

django-redis pickles by default, so anyone who can write a key in Redis could make the API run code
when it reads that key. JSON cannot carry code. A value that is not JSON (a pickle planted in the
cache's key space, say) is read as a miss, so it is neither run nor turned into a 500.
"""

from __future__ import annotations

from typing import Any

from django_redis.serializers.json import JSONSerializer


class StrictJSONSerializer(JSONSerializer):  # type: ignore[misc]  # django-redis has no types: its class is Any
    """django-redis's JSON serializer; a stored value that is not UTF-8 JSON reads as None (a miss)."""

    def loads(self, value: bytes) -> Any:
        try:
            return super().loads(value)
        except (UnicodeDecodeError, ValueError):
            return None
