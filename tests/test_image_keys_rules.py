"""Image key rules: each image sealed with a data key of its own (wrapped by the active master key, listed
for rotation), opened with it or — stored before revision 0012 — with the case's communication key; once
its key is gone nothing opens it."""

from __future__ import annotations

import uuid

import pytest

from legetime.core.platform.crypto import (
    KeyRing,
    KeyUnavailable,
    Tampered,
    WrappedKey,
    bound_to,
    seal,
    unseal,
)
from legetime.core.platform.db.models import Attachment, Case
from legetime.core.protection import content
from legetime.core.protection.keys import WRAPPED

RING = KeyRing([("2027-01", bytes(range(32))), ("2026-12", bytes(range(1, 33)))])
IMAGE = b"\xff\xd8 pixels of a rash \xff\xd9"


def new_case() -> Case:
    case = Case(id=uuid.uuid4())
    content.give_case_keys(RING, case)
    return case


def new_image(case: Case) -> tuple[Attachment, bytes]:
    attachment = Attachment(id=uuid.uuid4(), case_id=case.id)
    return attachment, content.seal_image(RING, case, attachment, IMAGE)


def test_each_image_has_its_own_key_wrapped_by_the_active_master_key() -> None:
    case = new_case()
    (first, sealed_first), (second, sealed_second) = new_image(case), new_image(case)
    assert first.key_id == second.key_id == "2027-01" and first.sealed
    assert first.wrapped_key and second.wrapped_key and first.wrapped_key != second.wrapped_key
    assert content.image_key(RING, case, first) != content.image_key(RING, case, second)
    assert content.image_key(RING, case, first) != content.communication_key(RING, case)
    assert content.open_image(RING, case, first, sealed_first) == IMAGE
    assert content.open_image(RING, case, second, sealed_second) == IMAGE
    assert IMAGE not in sealed_first


def test_no_other_key_opens_an_image() -> None:
    case = new_case()
    image, sealed = new_image(case)
    other, _ = new_image(case)
    aad = bound_to(case.id, f"image:{image.id}")
    for key in (
        content.communication_key(RING, case),
        content.record_key(RING, case),
        content.image_key(RING, case, other),
    ):
        with pytest.raises(Tampered):
            unseal(key, sealed, aad)


def test_an_image_whose_key_is_gone_does_not_open() -> None:
    case = new_case()
    image, sealed = new_image(case)
    image.wrapped_key = None
    with pytest.raises(KeyUnavailable):
        content.open_image(RING, case, image, sealed)


def test_an_image_stored_before_image_keys_opens_with_the_communication_key() -> None:
    case = new_case()
    legacy = Attachment(id=uuid.uuid4(), case_id=case.id, sealed=True)
    sealed = seal(content.communication_key(RING, case), IMAGE, bound_to(case.id, f"image:{legacy.id}"))
    assert legacy.key_id is None and legacy.wrapped_key is None
    assert content.open_image(RING, case, legacy, sealed) == IMAGE
    case.communication_key = None  # the communication deleted: so is the legacy image
    with pytest.raises(KeyUnavailable):
        content.open_image(RING, case, legacy, sealed)


def test_an_image_key_outlives_nothing_but_its_row() -> None:
    """Deleting the communication key does not touch an image's own key (the purge deletes the row)."""
    case = new_case()
    image, sealed = new_image(case)
    case.communication_key = None
    assert content.open_image(RING, case, image, sealed) == IMAGE


def test_rotation_rewraps_image_keys() -> None:
    assert (Attachment, (("key_id", "wrapped_key"),)) in WRAPPED
    case = new_case()
    old = KeyRing([("2026-12", bytes(range(1, 33)))])
    image = Attachment(id=uuid.uuid4(), case_id=case.id)
    sealed = content.seal_image(old, case, image, IMAGE)
    assert image.key_id == "2026-12" and image.wrapped_key is not None
    rewrapped = RING.rewrap(WrappedKey(image.key_id, image.wrapped_key))
    image.key_id, image.wrapped_key = rewrapped.key_id, rewrapped.wrapped
    assert image.key_id == "2027-01"
    assert content.open_image(KeyRing([("2027-01", bytes(range(32)))]), case, image, sealed) == IMAGE
