"""Health content, sealed at rest (see ``legetime.core.platform.crypto``) — the only place that seals or
opens it. (National IDs are sealed with each person's own key: ``legetime.core.identity.persons``.)

Each case has two data keys: the **communication key** (answers, messages), deleted when the
communication is (retention, withdrawn consent, erasure); and the **record key** (journal notes), kept
under health-record law. Each image has a data key of its own, deleted with the image — so withdrawing
consent to storing images shreds them at once, while the rest of the communication stays readable.
Images stored before revision 0012 have no key of their own and are read with the communication key.

Each appointment has one data key (her message to the doctor, her forms, the invoice's PDF), deleted when
its purpose is fulfilled (``core.appointments.retention``).
"""

from __future__ import annotations

import json
from typing import Any

from legetime.core.platform.crypto import KeyRing, KeyUnavailable, WrappedKey, bound_to, seal, unseal
from legetime.core.platform.db.appointment_models import Appointment, AppointmentForm
from legetime.core.platform.db.models import Attachment, Case, JournalNote, Message

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


# --- images ----------------------------------------------------------------------------------------


def seal_image(ring: KeyRing, case: Case, attachment: Attachment, data: bytes) -> bytes:
    """Seal a new image with a new data key of its own, which is set (wrapped) on ``attachment`` (its id
    must be set): deleting the row shreds the image, in storage and in every backup."""
    key, wrapped = ring.new_data_key()
    attachment.key_id, attachment.wrapped_key = wrapped.key_id, wrapped.wrapped
    attachment.sealed = True
    return seal(key, data, bound_to(case.id, f"image:{attachment.id}"))


def image_key(ring: KeyRing, case: Case, attachment: Attachment) -> bytes:
    if attachment.key_id is None:  # stored before revision 0012
        return communication_key(ring, case)
    if attachment.wrapped_key is None:
        raise KeyUnavailable("the image's key has been deleted")
    return ring.unwrap(WrappedKey(attachment.key_id, attachment.wrapped_key))


def open_image(ring: KeyRing, case: Case, attachment: Attachment, sealed: bytes) -> bytes:
    return unseal(image_key(ring, case, attachment), sealed, bound_to(case.id, f"image:{attachment.id}"))


def set_note(ring: KeyRing, case: Case, note: JournalNote, text: str, sections: dict[str, str]) -> None:
    plain = json.dumps({"text": text, "sections": sections}, ensure_ascii=False).encode()
    note.content_sealed = seal(record_key(ring, case), plain, bound_to(case.id, "journal"))


def note_content(ring: KeyRing, case: Case, note: JournalNote) -> tuple[str, dict[str, str]]:
    plain = json.loads(unseal(record_key(ring, case), note.content_sealed, bound_to(case.id, "journal")))
    return str(plain["text"]), dict(plain["sections"])


# --- appointments ----------------------------------------------------------------------------------


def give_appointment_key(ring: KeyRing, appointment: Appointment) -> None:
    """A new data key for a new appointment (its id must be set): wraps her message and her forms."""
    _, key = ring.new_data_key()
    appointment.data_key_id, appointment.data_key = key.key_id, key.wrapped


def _appointment_key(ring: KeyRing, appointment: Appointment) -> bytes:
    if appointment.data_key is None or appointment.data_key_id is None:
        raise KeyUnavailable("the appointment's data has been deleted")
    return ring.unwrap(WrappedKey(appointment.data_key_id, appointment.data_key))


def appointment_deleted(appointment: Appointment) -> bool:
    return appointment.data_key is None


def set_appointment_message(ring: KeyRing, appointment: Appointment, message: str | None) -> None:
    text = (message or "").strip()
    appointment.message_sealed = (
        seal(_appointment_key(ring, appointment), text.encode(), bound_to(appointment.id, "message"))
        if text
        else None
    )


def appointment_message(ring: KeyRing, appointment: Appointment) -> str | None:
    """Her message to the doctor, or None when she wrote none or it has been deleted."""
    if appointment.message_sealed is None or appointment_deleted(appointment):
        return None
    key = _appointment_key(ring, appointment)
    return unseal(key, appointment.message_sealed, bound_to(appointment.id, "message")).decode()


def seal_form(
    ring: KeyRing, appointment: Appointment, form: AppointmentForm, answers: dict[str, Any]
) -> None:
    plain = json.dumps(answers, ensure_ascii=False, sort_keys=True).encode()
    aad = bound_to(appointment.id, f"form:{form.kind.value}")
    form.answers_sealed = seal(_appointment_key(ring, appointment), plain, aad)


def form_answers(ring: KeyRing, appointment: Appointment, form: AppointmentForm) -> dict[str, Any]:
    """A form's answers, or ``{}`` when they have been deleted."""
    if form.answers_sealed is None or appointment_deleted(appointment):
        return {}
    aad = bound_to(appointment.id, f"form:{form.kind.value}")
    result: dict[str, Any] = json.loads(unseal(_appointment_key(ring, appointment), form.answers_sealed, aad))
    return result


def seal_document(ring: KeyRing, appointment: Appointment, what: str, data: bytes) -> bytes:
    """A document about the appointment (its invoice's PDF), sealed for storage."""
    return seal(_appointment_key(ring, appointment), data, bound_to(appointment.id, what))


def open_document(ring: KeyRing, appointment: Appointment, what: str, sealed: bytes) -> bytes:
    return unseal(_appointment_key(ring, appointment), sealed, bound_to(appointment.id, what))
