"""The answers' JSON is written by orjson, with the bytes ``json.dumps`` wrote (schema/json_encoding.py)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest

from legetime.schema.json_encoding import encode


def strawberry_json(data: Any) -> bytes:
    """What strawberry writes: ``json.dumps`` with compact separators."""
    return json.dumps(data, separators=(",", ":")).encode()


class Colour(StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    "data",
    [
        {"data": {"myCases": {"edges": [{"node": {"id": "Q2FzZTox", "age": 7, "forChild": True}}]}}},
        {"data": None, "errors": [{"message": "Fant ikke saken.", "path": ["case"], "extensions": {}}]},
        {"text": 'Bjørn, Åse og Ærlig — «hei» 😀 \u2028 \x7f \x00 \n " \\ /'},
        {"big": 2**70, "negative": -(2**63), "list": [1, None, False, "x"]},
        {1: "a key that is not a string"},
        {"colour": Colour.RED},
        {"float": 1.5, "times": ["01:02:03.4", "x,1.5"]},
        [[[[]]]],
        "\ud800",
    ],
)
def test_the_same_bytes_as_json_dumps(data: Any) -> None:
    assert encode(data) == strawberry_json(data)


def test_random_text_the_same_bytes() -> None:
    chooser = random.Random(12)
    ranges = ((0, 127), (128, 0xD7FF), (0x10000, 0x10FFFF))
    for _ in range(2000):
        text = "".join(chr(chooser.randint(*chooser.choice(ranges))) for _ in range(10))
        data = {"s": text, "n": chooser.randint(-(10**12), 10**12)}
        assert encode(data) == strawberry_json(data)


def test_what_json_refuses_is_still_refused() -> None:
    with pytest.raises(TypeError):
        encode({"at": datetime.now(UTC)})
