"""Video consultations through GraphQL, with a simulated clock: only the appointment's patient (after a
BankID login) and its clinician get join tokens, only from ten minutes before until the end; the token
names no one (an opaque identity, a given name); joining registers her arrival; the room closes when the
visit is over; nothing asks the video service to record (the LiveKit fake, over HTTP); a photo from the
chat is stored with the referring case and deleted with the case's images."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import update

from legetime.core.platform.db.models import AuthSession
from legetime.core.platform.providers import VIDEO
from tests.api import ERRORS, SUBMIT_FIELDS, complete_answers
from tests.appointment_stack import APPOINTMENT, VISIT, AppointmentStack, appointment_stack
from tests.appointment_stack import VIDEO as VIDEO_TYPE
from tests.fakes.livekit import LiveKitFake
from tests.fakes.server import serve_fake
from tests.support import synthetic_national_id
from tests.test_notices import MOTHER

OSLO = ZoneInfo("Europe/Oslo")
JOIN = "join { url token expiresAt }"
OTHER_PATIENT = synthetic_national_id(date(1988, 2, 3))


def early_morning(days: int = 3) -> datetime:
    """A day ahead at 07:40 in Oslo: the clinic opens at 08:00, so the day's first time is 20 minutes
    away and no reminder or arrival text is due any more."""
    day = (datetime.now(OSLO) + timedelta(days=days)).date()
    return datetime.combine(day, time(7, 40), OSLO)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(early_morning(), tick=True) as traveller:
        yield traveller


@pytest.fixture
def stack(clock: time_machine.Traveller, tmp_path: Path) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path) as stack:
        yield stack


def book_video(stack: AppointmentStack, token: str | None = None) -> dict[str, Any]:
    slot = stack.slots(VIDEO_TYPE, days=0, span=0.5, token=token)[0]
    return dict(stack.book(slot["id"], VIDEO_TYPE, token=token)["appointment"])


def join(stack: AppointmentStack, appointment_id: str, token: str | None) -> dict[str, Any]:
    return stack.api.mutate("joinVideoConsultation", {"appointmentId": appointment_id}, JOIN, token)


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["errors"]]


def at(clock: time_machine.Traveller, instant: str, shift: timedelta) -> None:
    clock.move_to(datetime.fromisoformat(instant) + shift)


def status(stack: AppointmentStack, appointment_id: str) -> str:
    query = "query($id: ID!) { appointment(id: $id) { status } }"
    return str(stack.api.gql(query, stack.clinician, id=appointment_id)["appointment"]["status"])


def test_only_her_and_her_clinician_get_tokens_within_the_window(
    stack: AppointmentStack, clock: time_machine.Traveller
) -> None:
    appointment = book_video(stack)
    starts, ends = appointment["startsAt"], appointment["endsAt"]
    other = stack.api.login(OTHER_PATIENT)
    theirs = book_video(stack, other)

    assert codes(join(stack, appointment["id"], stack.mother)) == ["FORBIDDEN"]  # 20 minutes early
    at(clock, starts, -timedelta(minutes=9))
    joined = join(stack, appointment["id"], stack.mother)
    assert joined["errors"] == [], joined
    claims = stack.platform.providers.get(VIDEO).verify(joined["join"]["token"])  # type: ignore[attr-defined]
    assert claims["name"] == appointment["patient"]["givenName"]
    assert claims["attributes"] == {"role": "patient"}
    assert MOTHER not in str(claims) and claims["sub"].startswith("p-")
    assert datetime.fromisoformat(joined["join"]["expiresAt"]) <= datetime.fromisoformat(ends) + timedelta(
        minutes=15, seconds=1
    )
    assert status(stack, appointment["id"]) == "ARRIVED"  # joining is her arrival
    again = join(stack, appointment["id"], stack.mother)["join"]
    assert stack.platform.providers.get(VIDEO).verify(again["token"])["sub"] == claims["sub"]  # type: ignore[attr-defined]

    by_clinician = join(stack, appointment["id"], stack.clinician)
    assert by_clinician["errors"] == []
    family = appointment["clinician"]["name"].split()[-1]
    doctor = stack.platform.providers.get(VIDEO).verify(by_clinician["join"]["token"])  # type: ignore[attr-defined]
    assert (doctor["name"], doctor["attributes"]) == (f"Lege {family}", {"role": "clinician"})
    assert doctor["video"]["room"] == claims["video"]["room"]

    for token in (stack.operator, other):  # an operator, another patient
        assert codes(join(stack, appointment["id"], token)) == ["NOT_FOUND"]
    assert codes(join(stack, theirs["id"], stack.mother)) == ["NOT_FOUND"]  # another person's appointment
    assert codes(join(stack, appointment["id"], None)) == ["UNAUTHENTICATED"]

    at(clock, ends, timedelta(minutes=1))
    assert codes(join(stack, appointment["id"], stack.mother)) == ["FORBIDDEN"]  # it has ended
    assert codes(join(stack, appointment["id"], stack.clinician)) == ["FORBIDDEN"]


def test_a_session_without_bankid_and_an_in_person_visit_get_no_token(
    stack: AppointmentStack, clock: time_machine.Traveller
) -> None:
    appointment = book_video(stack)
    visit = stack.book(stack.slots(VISIT, days=0, span=0.5)[0]["id"])["appointment"]
    at(clock, appointment["startsAt"], -timedelta(minutes=5))

    async def weaker_login() -> None:
        async with stack.platform.db.transaction() as session:
            await session.execute(update(AuthSession).values(assurance_level="substantial"))

    assert stack.client.portal is not None
    stack.client.portal.call(weaker_login)
    assert codes(join(stack, appointment["id"], stack.mother)) == ["UNAUTHENTICATED"]
    assert join(stack, appointment["id"], stack.clinician)["errors"] == []  # staff: their staff session
    stack.login()  # a BankID login again
    assert join(stack, appointment["id"], stack.mother)["errors"] == []
    assert codes(join(stack, visit["id"], stack.mother)) == ["INVALID"]


def test_livekit_rooms_close_when_the_visit_is_over_and_nothing_is_recorded(
    clock: time_machine.Traveller, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_fake(LiveKitFake()) as fake:
        monkeypatch.setenv("LEGETIME_VIDEO_PROVIDER", "livekit")
        for name, value in fake.plugin_settings().items():
            monkeypatch.setenv(f"LEGETIME_LIVEKIT_{name}", value)
        with appointment_stack(tmp_path) as stack:
            assert stack.platform.providers.get(VIDEO).name == "livekit"
            appointment = book_video(stack)
            cancelled = book_video(stack)
            at(clock, appointment["startsAt"], -timedelta(minutes=2))
            mine = join(stack, appointment["id"], stack.mother)
            theirs = join(stack, appointment["id"], stack.clinician)
            assert mine["errors"] == theirs["errors"] == []
            assert mine["join"]["url"].startswith("ws://127.0.0.1")
            patient, doctor = (fake.verify_access_token(p["join"]["token"]) for p in (mine, theirs))
            assert patient["video"]["room"] == doctor["video"]["room"] and list(fake.rooms) == [
                patient["video"]["room"]
            ]
            done = stack.api.ok(
                "completeAppointment", {"appointmentId": appointment["id"]}, APPOINTMENT, stack.clinician
            )
            assert done["appointment"]["status"] == "COMPLETED"
            stack.api.wait_for(lambda: fake.rooms == {}, "the room closed on completion")
            assert codes(join(stack, appointment["id"], stack.mother)) == ["FORBIDDEN"]

            at(clock, cancelled["startsAt"], -timedelta(minutes=5))
            assert join(stack, cancelled["id"], stack.clinician)["errors"] == []  # its clinician looks in
            assert len(fake.rooms) == 1
            cancel = {"appointmentId": cancelled["id"]}
            stack.api.ok("cancelAppointment", cancel, "appointment { id }", stack.operator)
            stack.api.wait_for(lambda: fake.rooms == {}, "the room closed on cancellation")
            deleted = [r["body"]["room"] for r in fake.requests if r["path"].endswith("/DeleteRoom")]
            assert len(deleted) == len(set(deleted)) == 2
            assert fake.recording_requests == []
            assert all("Egress" not in r["path"] for r in fake.requests)
            for request in fake.requests:
                assert not {"egress", "roomPreset", "room_preset"} & set(request["body"] or {})


def test_a_failing_video_service_does_not_stop_the_visit_from_ending(
    clock: time_machine.Traveller, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_fake(LiveKitFake()) as fake:
        monkeypatch.setenv("LEGETIME_VIDEO_PROVIDER", "livekit")
        for name, value in fake.plugin_settings().items():
            monkeypatch.setenv(f"LEGETIME_LIVEKIT_{name}", value)
        with appointment_stack(tmp_path) as stack:
            appointment = book_video(stack)
            at(clock, appointment["startsAt"], timedelta(minutes=1))
            assert join(stack, appointment["id"], stack.mother)["errors"] == []
            fake.down = True
            complete = {"appointmentId": appointment["id"]}
            done = stack.api.ok("completeAppointment", complete, "appointment { status }", stack.clinician)
            assert done["appointment"]["status"] == "COMPLETED"
            stack.api.wait_for(
                lambda: any(r["path"].endswith("/DeleteRoom") for r in fake.requests), "a close attempt"
            )
            assert len(fake.rooms) == 1  # refused while down: the job tries again
            fake.down = False
            clock.shift(timedelta(minutes=5))  # the outbox's backoff
            stack.api.wait_for(lambda: fake.rooms == {}, "the room closed on a retry")


# --- the chat photo -----------------------------------------------------------------------------------


def referred_case(stack: AppointmentStack, *, close: bool = True) -> str:
    """A case of the mother's answered with a physical examination (and closed): its id."""
    api, mother = stack.api, stack.mother
    case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    answers = {"caseId": case_id, "answers": complete_answers(api, for_child=False)}
    api.ok("answerQuestionnaire", answers, "case { id }", mother)
    texts = api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    versions = {t["purpose"]: t["version"] for t in texts}
    for purpose in ("COMMUNICATION_STORAGE", "IMAGE_STORAGE"):
        consent = {"purpose": purpose, "textVersion": versions[purpose], "caseId": case_id}
        api.ok("grantConsent", consent, "consent { granted }", mother)
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": f"s-{case_id}"}, SUBMIT_FIELDS, mother)
    api.ok("claimCase", {"caseId": case_id}, "case { id }", stack.clinician)
    answer = {"caseId": case_id, "body": "Dette bør undersøkes.", "outcome": "PHYSICAL_EXAMINATION"}
    api.ok("answerCase", answer, "message { id }", stack.clinician)
    if close:
        api.ok("closeCase", {"caseId": case_id}, "case { status }", mother)
    return str(case_id)


def png() -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (40, 30), (200, 80, 80)).save(out, "PNG")
    return out.getvalue()


def send_photo(stack: AppointmentStack, appointment_id: str, token: str | None) -> dict[str, Any]:
    """attachVideoChatImage as the GraphQL multipart request spec has it."""
    import json

    query = (
        "mutation($input: AttachVideoChatImageInput!) { attachVideoChatImage(input: $input) { "
        f"attachment {{ id contentType width height }} {ERRORS} }} }}"
    )
    operations = {"query": query, "variables": {"input": {"appointmentId": appointment_id, "image": None}}}
    response = stack.client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.input.image"]})},
        files={"0": ("bilde.png", png(), "application/octet-stream")},
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"]["attachVideoChatImage"])


def case_images(stack: AppointmentStack, case_id: str) -> list[str]:
    query = "query($id: ID!) { case(id: $id) { attachments { id } } }"
    return [a["id"] for a in stack.api.gql(query, stack.mother, id=case_id)["case"]["attachments"]]


def test_a_chat_photo_is_stored_with_the_referring_case_and_deleted_with_its_images(
    stack: AppointmentStack, clock: time_machine.Traveller
) -> None:
    case_id = referred_case(stack)
    slot = stack.slots(VIDEO_TYPE, days=0, span=0.5)[0]
    referral = {"caseId": case_id, "clinicId": stack.clinic_id, "appointmentType": VIDEO_TYPE}
    referral["slotId"] = slot["id"]
    referred = stack.api.ok("referToAppointment", referral, APPOINTMENT, stack.clinician)["appointment"]
    direct = book_video(stack)
    assert codes(send_photo(stack, referred["id"], stack.mother)) == ["FORBIDDEN"]  # not yet open

    at(clock, referred["startsAt"], -timedelta(minutes=5))
    sent = send_photo(stack, referred["id"], stack.mother)
    assert sent["errors"] == [] and sent["attachment"]["contentType"] == "image/png"
    assert case_images(stack, case_id) == [sent["attachment"]["id"]]
    assert codes(send_photo(stack, referred["id"], stack.operator)) == ["NOT_FOUND"]
    assert codes(send_photo(stack, referred["id"], stack.clinician)) == ["FORBIDDEN"]

    withdraw = {"purpose": "IMAGE_STORAGE", "caseId": case_id}
    withdrawn = stack.api.ok("withdrawConsent", withdraw, "consent { granted }", stack.mother)
    assert withdrawn["consent"]["granted"] is False
    assert case_images(stack, case_id) == []
    assert codes(send_photo(stack, referred["id"], stack.mother)) == ["CONSENT_REQUIRED"]

    at(clock, direct["startsAt"], -timedelta(minutes=5))
    assert codes(send_photo(stack, direct["id"], stack.mother)) == ["NOT_SUPPORTED"]  # no case to hold it


def test_the_room_is_closed_and_no_token_after_a_no_show(
    stack: AppointmentStack, clock: time_machine.Traveller
) -> None:
    appointment = book_video(stack)
    at(clock, appointment["startsAt"], timedelta(minutes=3))
    assert join(stack, appointment["id"], stack.clinician)["errors"] == []
    stack.api.ok("markNoShow", {"appointmentId": appointment["id"]}, "appointment { status }", stack.operator)
    assert codes(join(stack, appointment["id"], stack.mother)) == ["FORBIDDEN"]
