"""Health content and national IDs, sealed at rest (see ``core.crypto``) — the only place that seals or
opens them.

Each case has two data keys: the **communication key** (answers, messages, images), deleted when the
communication is (retention, withdrawn consent, erasure); and the **record key** (journal notes), kept
under health-record law. Each person has a data key for her national ID, which is found by keyed hash.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.platform.crypto import KeyRing, KeyUnavailable, WrappedKey, keyed_hash, seal, unseal
from legetime.core.platform.db.models import Case, JournalNote, Message, Person

if TYPE_CHECKING:
    from datetime import date

    from legetime.core.platform.runtime import Platform


def _aad(owner: uuid.UUID, what: str) -> bytes:
    return f"legetime:{owner}:{what}".encode()


# --- cases -----------------------------------------------------------------------------------------


def give_case_keys(ring: KeyRing, case: Case) -> None:
    """New data keys for a new case (its id must be set)."""
    _, communication = ring.new_data_key()
    _, record = ring.new_data_key()
    case.communication_key_id, case.communication_key = communication.key_id, communication.wrapped
    case.record_key_id, case.record_key = record.key_id, record.wrapped


def communication_key(ring: KeyRing, case: Case) -> bytes:
    if case.communication_key is None or case.communication_key_id is None:
        raise KeyUnavailable("the case's communication has been deleted")
    return ring.unwrap(WrappedKey(case.communication_key_id, case.communication_key))


def record_key(ring: KeyRing, case: Case) -> bytes:
    return ring.unwrap(WrappedKey(case.record_key_id, case.record_key))


def communication_deleted(case: Case) -> bool:
    return case.communication_key is None


def set_answers(ring: KeyRing, case: Case, answers: dict[str, Any]) -> None:
    plain = json.dumps(answers, ensure_ascii=False, sort_keys=True).encode()
    case.answers_sealed = seal(communication_key(ring, case), plain, _aad(case.id, "answers"))


def answers(ring: KeyRing, case: Case) -> dict[str, Any]:
    """The answers, or ``{}`` when none were given or the communication has been deleted."""
    if case.answers_sealed is None or communication_deleted(case):
        return {}
    plain = unseal(communication_key(ring, case), case.answers_sealed, _aad(case.id, "answers"))
    result: dict[str, Any] = json.loads(plain)
    return result


def seal_message(ring: KeyRing, case: Case, body: str) -> bytes:
    return seal(communication_key(ring, case), body.encode(), _aad(case.id, "message"))


def message_body(ring: KeyRing, case: Case, message: Message) -> str:
    return unseal(communication_key(ring, case), message.body_sealed, _aad(case.id, "message")).decode()


def seal_image(ring: KeyRing, case: Case, attachment_id: uuid.UUID, data: bytes) -> bytes:
    return seal(communication_key(ring, case), data, _aad(case.id, f"image:{attachment_id}"))


def open_image(ring: KeyRing, case: Case, attachment_id: uuid.UUID, sealed: bytes) -> bytes:
    return unseal(communication_key(ring, case), sealed, _aad(case.id, f"image:{attachment_id}"))


def set_note(ring: KeyRing, case: Case, note: JournalNote, text: str, sections: dict[str, str]) -> None:
    plain = json.dumps({"text": text, "sections": sections}, ensure_ascii=False).encode()
    note.content_sealed = seal(record_key(ring, case), plain, _aad(case.id, "journal"))


def note_content(ring: KeyRing, case: Case, note: JournalNote) -> tuple[str, dict[str, str]]:
    plain = json.loads(unseal(record_key(ring, case), note.content_sealed, _aad(case.id, "journal")))
    return str(plain["text"]), dict(plain["sections"])


# --- persons ---------------------------------------------------------------------------------------


def lookup_hash(platform: Platform, national_id: str) -> str:
    # Not under the rotating master keys: a look-up must keep working across rotations.
    return keyed_hash(platform.derive_key("national-id-lookup"), national_id)


def new_person(
    platform: Platform, national_id: str, *, given_name: str, family_name: str, birth_date: date
) -> Person:
    key, wrapped = platform.keyring.new_data_key()
    person = Person(
        id=uuid.uuid4(),
        national_id_hash=lookup_hash(platform, national_id),
        key_id=wrapped.key_id,
        wrapped_key=wrapped.wrapped,
        given_name=given_name,
        family_name=family_name,
        birth_date=birth_date,
    )
    person.national_id_sealed = seal(key, national_id.encode(), _aad(person.id, "national_id"))
    return person


def national_id(ring: KeyRing, person: Person) -> str:
    key = ring.unwrap(WrappedKey(person.key_id, person.wrapped_key))
    return unseal(key, person.national_id_sealed, _aad(person.id, "national_id")).decode()


async def find_person(session: AsyncSession, platform: Platform, national_id: str) -> Person | None:
    return await session.scalar(
        select(Person).where(Person.national_id_hash == lookup_hash(platform, national_id))
    )
