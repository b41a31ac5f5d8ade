"""Health content, sealed at rest (see ``legetime.core.platform.crypto``) — the only place that seals or
opens it. (National IDs are sealed with each person's own key: ``legetime.core.identity.persons``.)

Each case has two data keys: the **communication key** (answers, messages, images), deleted when the
communication is (retention, withdrawn consent, erasure); and the **record key** (journal notes), kept
under health-record law.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from legetime.core.platform.crypto import KeyRing, KeyUnavailable, WrappedKey, bound_to, seal, unseal
from legetime.core.platform.db.models import Case, JournalNote, Message

if TYPE_CHECKING:
    pass


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
    case.answers_sealed = seal(communication_key(ring, case), plain, bound_to(case.id, "answers"))


def answers(ring: KeyRing, case: Case) -> dict[str, Any]:
    """The answers, or ``{}`` when none were given or the communication has been deleted."""
    if case.answers_sealed is None or communication_deleted(case):
        return {}
    plain = unseal(communication_key(ring, case), case.answers_sealed, bound_to(case.id, "answers"))
    result: dict[str, Any] = json.loads(plain)
    return result


def seal_message(ring: KeyRing, case: Case, body: str) -> bytes:
    return seal(communication_key(ring, case), body.encode(), bound_to(case.id, "message"))


def message_body(ring: KeyRing, case: Case, message: Message) -> str:
    return unseal(communication_key(ring, case), message.body_sealed, bound_to(case.id, "message")).decode()


def seal_image(ring: KeyRing, case: Case, attachment_id: uuid.UUID, data: bytes) -> bytes:
    return seal(communication_key(ring, case), data, bound_to(case.id, f"image:{attachment_id}"))


def open_image(ring: KeyRing, case: Case, attachment_id: uuid.UUID, sealed: bytes) -> bytes:
    return unseal(communication_key(ring, case), sealed, bound_to(case.id, f"image:{attachment_id}"))


def set_note(ring: KeyRing, case: Case, note: JournalNote, text: str, sections: dict[str, str]) -> None:
    plain = json.dumps({"text": text, "sections": sections}, ensure_ascii=False).encode()
    note.content_sealed = seal(record_key(ring, case), plain, bound_to(case.id, "journal"))


def note_content(ring: KeyRing, case: Case, note: JournalNote) -> tuple[str, dict[str, str]]:
    plain = json.loads(unseal(record_key(ring, case), note.content_sealed, bound_to(case.id, "journal")))
    return str(plain["text"]), dict(plain["sections"])
