"""Envelope encryption rules: sealing, binding to a place, key wrapping and rotation, master key parsing."""

from __future__ import annotations

import pytest

from legetime.core.platform.config import load_settings
from legetime.core.platform.crypto import (
    KeyRing,
    KeyUnavailable,
    Tampered,
    WrappedKey,
    generate_master_key_entry,
    keyed_hash,
    parse_master_keys,
    seal,
    unseal,
)
from legetime.core.platform.errors import ConfigError

KEY = bytes(range(32))


def test_a_sealed_value_opens_with_its_key_and_place() -> None:
    sealed = seal(KEY, b"Hoste i tre uker", b"case-1:answers")
    assert b"Hoste" not in sealed
    assert unseal(KEY, sealed, b"case-1:answers") == b"Hoste i tre uker"


def test_the_same_plaintext_seals_differently_each_time() -> None:
    assert seal(KEY, b"x", b"a") != seal(KEY, b"x", b"a")


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s[:-1] + bytes([s[-1] ^ 1]),  # a flipped bit
        lambda s: s[:20],  # truncated
        lambda s: b"\x02" + s[1:],  # unknown format
    ],
)
def test_an_altered_value_does_not_open(change: object) -> None:
    sealed = seal(KEY, b"secret", b"place")
    with pytest.raises(Tampered):
        unseal(KEY, change(sealed), b"place")  # type: ignore[operator]


def test_a_value_moved_to_another_place_does_not_open() -> None:
    with pytest.raises(Tampered):
        unseal(KEY, seal(KEY, b"secret", b"case-1:answers"), b"case-2:answers")


def test_rotation_rewraps_without_changing_the_data_key() -> None:
    old = KeyRing([("old", bytes(32))])
    key, wrapped = old.new_data_key()
    both = KeyRing([("new", bytes([7]) * 32), ("old", bytes(32))])
    rewrapped = both.rewrap(wrapped)
    assert rewrapped.key_id == "new" and rewrapped.wrapped != wrapped.wrapped
    only_new = KeyRing([("new", bytes([7]) * 32)])
    assert only_new.unwrap(rewrapped) == key
    with pytest.raises(KeyUnavailable):
        only_new.unwrap(wrapped)  # what the retired key wrapped (a backup) is gone with it
    with pytest.raises(KeyUnavailable):
        only_new.unwrap(None)  # a shredded key


def test_a_wrapped_key_under_the_wrong_master_key_is_refused() -> None:
    _, wrapped = KeyRing([("a", bytes(32))]).new_data_key()
    with pytest.raises(Tampered):
        KeyRing([("a", bytes([1]) * 32)]).unwrap(WrappedKey("a", wrapped.wrapped))


def test_master_key_entries_parse_and_local_stands_for_the_derived_key() -> None:
    entry = generate_master_key_entry("2027-01")
    keys = parse_master_keys([entry, "local"], local_key=KEY)
    assert [key_id for key_id, _ in keys] == ["2027-01", "local"]
    assert keys[1][1] == KEY and len(keys[0][1]) == 32


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["k1=abc"], "must be 32 bytes"),
        (["k1=!!!"], "must be 32 bytes"),
        (["=AAAA"], "no key id"),
        ([generate_master_key_entry("k"), generate_master_key_entry("k")], "appears twice"),
    ],
)
def test_bad_master_key_entries_are_refused(entries: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_master_keys(entries, local_key=KEY)


def test_a_bad_master_key_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGETIME_MASTER_KEYS", "k1=tooshort")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.setting == "LEGETIME_MASTER_KEYS"


def test_keyed_hashes_match_equal_ids_only_under_the_same_key() -> None:
    assert keyed_hash(KEY, "17889200022") == keyed_hash(KEY, "17889200022")
    assert keyed_hash(KEY, "17889200022") != keyed_hash(KEY, "05921550016")
    assert keyed_hash(KEY, "17889200022") != keyed_hash(bytes(32), "17889200022")
