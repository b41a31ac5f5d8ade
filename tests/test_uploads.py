"""An image upload is decoded outside the transaction that attaches it, and only so many at once: on the
embedded default (SQLite, where a transaction holds the write lock) other people's writes do not wait
for someone's large image, and four large uploads at once do not decode four images at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from legetime.core.consultation import attachments
from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.runtime import Platform
from tests.api import Api
from tests.test_case_rules import draft_case, tiny_png

MOTHER = DEMO_PEOPLE[2].national_id
OTHER = "17889230266"  # a synthetic adult who is not in the demo: an outsider to her cases
SLOW_DECODE_SECONDS = 1.5


@pytest.fixture
def slow_decodes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every decode takes ``SLOW_DECODE_SECONDS`` (a large image); records how many ran at once."""
    state: dict[str, Any] = {"running": 0, "most": 0, "started": threading.Event(), "lock": threading.Lock()}
    decode = attachments.sanitize_image

    def slow(data: bytes) -> Any:
        with state["lock"]:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        state["started"].set()
        try:
            time.sleep(SLOW_DECODE_SECONDS)
            return decode(data)
        finally:
            with state["lock"]:
                state["running"] -= 1

    monkeypatch.setattr(attachments, "sanitize_image", slow)
    return state


def test_other_writes_do_not_wait_for_a_decoding_upload(
    embedded: tuple[Api, Platform], slow_decodes: dict[str, Any]
) -> None:
    api, _ = embedded
    mother, other = api.login(MOTHER), api.login(OTHER)
    case_id = draft_case(api, mother)
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(api.upload, case_id, tiny_png(), mother)
        assert slow_decodes["started"].wait(10)
        started = time.monotonic()
        api.ok("startCase", {}, "case { id }", other)  # a write by someone else, meanwhile
        waited = time.monotonic() - started
        assert upload.result(timeout=30)["errors"] == []
    assert waited < SLOW_DECODE_SECONDS / 2, f"a write waited {waited:.2f} s for someone's image decode"


def test_only_so_many_images_are_decoded_at_once(
    embedded: tuple[Api, Platform], slow_decodes: dict[str, Any]
) -> None:
    api, _ = embedded
    mother = api.login(MOTHER)
    case_id = draft_case(api, mother)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: api.upload(case_id, tiny_png(), mother), range(4)))
    assert all(result["errors"] == [] for result in results)
    assert slow_decodes["most"] <= attachments.MAX_CONCURRENT_DECODES


def test_an_outsider_gets_not_found_and_nothing_is_decoded(
    embedded: tuple[Api, Platform], slow_decodes: dict[str, Any]
) -> None:
    api, _ = embedded
    mother, other = api.login(MOTHER), api.login(OTHER)
    case_id = draft_case(api, mother)
    payload = api.upload(case_id, tiny_png(), other)
    assert [error["code"] for error in payload["errors"]] == ["NOT_FOUND"]
    assert not slow_decodes["started"].is_set()
