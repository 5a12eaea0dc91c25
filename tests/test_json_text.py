"""zipline_site.json_text: the same text as ``JSONEncoder.encode``, and the same errors."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder

from zipline_site.json_text import dict_encoder

VALUES: list[dict[str, Any]] = [
    {},
    {"email": "user@example.com", "n": 1, "ratio": 0.1, "none": None, "yes": True},
    {"é": "naïve \u2028 \U0001f600", "list": [1, [2, {"x": -3.5e300}]], "b": {"z": 1, "a": 2}},
]


@pytest.mark.parametrize(
    "encoder",
    [
        json.JSONEncoder(),
        json.JSONEncoder(ensure_ascii=False),
        json.JSONEncoder(sort_keys=True, separators=(",", ":")),
        json.JSONEncoder(default=str),
        DjangoJSONEncoder(allow_nan=False),
    ],
)
def test_the_text_is_the_encoders(encoder: json.JSONEncoder) -> None:
    encode = dict_encoder(encoder)
    for value in VALUES:
        assert encode(value) == encoder.encode(value)


def test_values_only_the_encoders_default_knows_are_encoded_by_it() -> None:
    value = {"at": datetime(2026, 12, 5, 7, 30), "amount": Decimal("1.50")}
    assert dict_encoder(DjangoJSONEncoder())(value) == DjangoJSONEncoder().encode(value)
    assert json.loads(dict_encoder(json.JSONEncoder(default=str))(value)) == {
        "at": "2026-12-05 07:30:00",
        "amount": "1.50",
    }


def test_errors_are_jsons_own() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    encode = dict_encoder(json.JSONEncoder(allow_nan=False))
    with pytest.raises(ValueError, match="Circular reference detected"):
        encode(cyclic)
    with pytest.raises(ValueError, match="Out of range float values"):
        encode({"x": float("nan")})
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode({"x": object()})
    assert encode({"after": "errors"}) == '{"after": "errors"}'  # nothing left over from a failed call


def test_a_pretty_printing_encoder_is_used_as_it_is() -> None:
    encoder = json.JSONEncoder(indent=2)
    assert dict_encoder(encoder) == encoder.encode
