"""The health forms before a visit, through GraphQL: sent after BankID by the patient (or her guardian) from
the reminder's forms link or from the app, checked as questionnaires, sealed, readable by her side and the
appointment's clinician but not by operators; the insurer consent also records her consent. An altered,
expired or replanned link is refused; the link page shows nothing about her."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select, update

from legetime.core.appointments import links
from legetime.core.consultation.consents import CONSENT_TEXTS
from legetime.core.consultation.questionnaire import load_questionnaire
from legetime.core.platform.db.appointment_models import Appointment, AppointmentForm
from legetime.core.platform.db.models import AuthSession, Consent, ConsentPurpose
from tests.appointment_stack import APPOINTMENT, SURGERY, AppointmentStack, appointment_stack
from tests.support import synthetic_national_id

FORM_FIELDS = "appointment { id forms { kind answers } } errors { field code message }"
SUBMIT = (
    "mutation($input: SubmitAppointmentFormInput!) { submitAppointmentForm(input: $input) { "
    f"{FORM_FIELDS} }} }}"
)
LINK_PAGE = (
    "query($link: String!) { appointmentLink(token: $link) { "
    "purpose startsAt clinicName clinicAddress formsMissing } }"
)
DECLARATION = {
    "height": 168,
    "weight": 64.5,
    "conditions": ["asthma_copd"],
    "takes_medication": True,
    "medications": "Ventoline ved behov",
    "blood_thinners": False,
    "has_allergies": True,
    "allergies": "Penicillin: utslett",
    "previous_anaesthesia": True,
    "anaesthesia_problems": False,
    "family_anaesthesia_problems": False,
    "pregnancy": "no",
    "smoking": "never",
    "snus": False,
    "teeth": False,
}
CONSENT = {"insurer_name": "Storebrand", "policy_number": "SK-2291-44", "consent": True}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path) as stack:
        yield stack


def run(stack: AppointmentStack, work: Any, *args: Any) -> Any:
    """A coroutine function in the app's event loop."""
    assert stack.client.portal is not None
    return stack.client.portal.call(work, *args)


def forms_link(stack: AppointmentStack, appointment_id: str) -> str:
    """The token the reminder's forms link carries, as the text maker makes it."""

    async def make() -> str:
        async with stack.platform.db.transaction() as session:
            row = await session.get(Appointment, uuid.UUID(appointment_id))
            assert row is not None
            return links.make_token(
                stack.platform, row, links.LinkPurpose.FORMS, links.expires_at(row, links.LinkPurpose.FORMS)
            )

    return str(run(stack, make))


def submit(stack: AppointmentStack, login: str | None, **input: Any) -> dict[str, Any]:
    """``submitAppointmentForm`` as ``login`` (None: not logged in), its payload."""
    return dict(stack.api.gql(SUBMIT, login, input=input)["submitAppointmentForm"])


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["errors"]]


def booked_visit(stack: AppointmentStack) -> dict[str, Any]:
    booked = stack.book(stack.slots()[0]["id"], message="Vondt i kneet")
    assert booked["errors"] == []
    return dict(booked["appointment"])


def test_the_form_definitions_load_and_the_consent_question_is_the_consent_text() -> None:
    declaration = load_questionnaire("health_declaration")
    ids = {q.id for q in declaration.questions}
    assert {
        "medications",
        "allergies",
        "anaesthesia_problems",
        "blood_thinners",
        "pregnancy",
        "smoking",
    } <= ids
    consent = load_questionnaire("insurer_consent")
    assert consent.question("consent").text == CONSENT_TEXTS[ConsentPurpose.INSURER_DISCLOSURE].text


def test_she_sends_the_health_declaration_from_the_link(stack: AppointmentStack) -> None:
    api = stack.api
    visit = booked_visit(stack)
    token = forms_link(stack, visit["id"])
    assert len(token) < 100

    page = api.gql(LINK_PAGE, None, link=token)["appointmentLink"]  # no login needed to see the page
    assert page == {
        "purpose": "FORMS",
        "startsAt": visit["startsAt"],
        "clinicName": "Legetime Majorstuen",
        "clinicAddress": "Kirkeveien 64, Oslo",
        "formsMissing": ["HEALTH_DECLARATION"],
    }

    sent = submit(stack, stack.mother, token=token, kind="HEALTH_DECLARATION", answers=DECLARATION)
    assert sent["errors"] == []
    [form] = sent["appointment"]["forms"]
    assert form["kind"] == "HEALTH_DECLARATION"
    assert form["answers"]["allergies"] == "Penicillin: utslett"
    assert api.gql(LINK_PAGE, None, link=token)["appointmentLink"]["formsMissing"] == []

    read = "query($id: ID!) { appointment(id: $id) { forms { kind answers } } }"
    for reader in (stack.mother, stack.clinician):
        [seen] = api.gql(read, reader, id=visit["id"])["appointment"]["forms"]
        assert seen["answers"]["medications"] == "Ventoline ved behov"
    [by_operator] = api.gql(read, stack.operator, id=visit["id"])["appointment"]["forms"]
    assert by_operator == {"kind": "HEALTH_DECLARATION", "answers": None}

    async def stored() -> bytes:
        async with stack.platform.db.transaction() as session:
            found = await session.scalar(select(AppointmentForm.answers_sealed))
            assert found is not None
            return found

    assert b"Penicillin" not in run(stack, stored)  # sealed, not stored as it came

    again = submit(
        stack, stack.mother, token=token, kind="HEALTH_DECLARATION", answers={**DECLARATION, "snus": True}
    )
    assert again["errors"] == []
    assert [f["answers"]["snus"] for f in again["appointment"]["forms"]] == [True]  # replaced, still one


def test_who_may_send_it(stack: AppointmentStack) -> None:
    visit = booked_visit(stack)
    token = forms_link(stack, visit["id"])
    form = {"token": token, "kind": "HEALTH_DECLARATION", "answers": DECLARATION}

    assert codes(submit(stack, None, **form)) == ["UNAUTHENTICATED"]
    stranger = stack.api.login(synthetic_national_id(date(1988, 2, 11)))
    assert codes(submit(stack, stranger, **form)) == ["NOT_FOUND"]
    assert codes(submit(stack, stack.clinician, **form)) == ["NOT_FOUND"]
    in_app = {"appointmentId": visit["id"], "kind": "HEALTH_DECLARATION", "answers": DECLARATION}
    assert codes(submit(stack, stranger, **in_app)) == ["NOT_FOUND"]
    assert codes(submit(stack, stack.operator, **in_app)) == ["NOT_FOUND"]

    async def not_by_bankid() -> None:  # her session, as if it came from a login of another kind
        async with stack.platform.db.transaction() as session:
            await session.execute(update(AuthSession).values(provider="password"))

    run(stack, not_by_bankid)
    assert codes(submit(stack, stack.mother, **form)) == ["UNAUTHENTICATED"]
    assert codes(submit(stack, stack.mother, **in_app)) == ["UNAUTHENTICATED"]


def test_only_the_types_forms_with_valid_answers(stack: AppointmentStack) -> None:
    visit = booked_visit(stack)
    token = forms_link(stack, visit["id"])

    not_of_type = submit(stack, stack.mother, token=token, kind="INSURER_CONSENT", answers=CONSENT)
    assert [(e["field"], e["code"]) for e in not_of_type["errors"]] == [("kind", "INVALID")]

    wrong = {**DECLARATION, "height": 900, "smoking": "cigars"}
    del wrong["pregnancy"]
    invalid = submit(stack, stack.mother, token=token, kind="HEALTH_DECLARATION", answers=wrong)
    assert {(e["field"], e["code"]) for e in invalid["errors"]} == {
        ("answers.height", "INVALID"),
        ("answers.pregnancy", "REQUIRED"),
        ("answers.smoking", "INVALID"),
    }
    assert invalid["appointment"] is None


def test_from_the_app_without_the_link_and_not_after_the_visit(stack: AppointmentStack) -> None:
    visit = booked_visit(stack)
    in_app = {"appointmentId": visit["id"], "kind": "HEALTH_DECLARATION", "answers": DECLARATION}
    assert submit(stack, stack.mother, **in_app)["errors"] == []

    starts = datetime.fromisoformat(visit["startsAt"])
    with time_machine.travel(starts + timedelta(minutes=5), tick=True):
        stack.login()
        assert codes(submit(stack, stack.mother, **in_app)) == ["FORBIDDEN"]


def test_an_altered_expired_or_replanned_link_is_refused(stack: AppointmentStack) -> None:
    visit = booked_visit(stack)
    token = forms_link(stack, visit["id"])
    form = {"kind": "HEALTH_DECLARATION", "answers": DECLARATION}

    altered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert codes(submit(stack, stack.mother, token=altered, **form)) == ["NOT_FOUND"]
    assert codes(submit(stack, stack.mother, token="ikke-en-lenke", **form)) == ["NOT_FOUND"]
    page = stack.api.raw(LINK_PAGE, None, link=altered)
    assert page["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    async def arrival_token() -> str:  # a real link, of another purpose
        async with stack.platform.db.transaction() as session:
            row = await session.get(Appointment, uuid.UUID(visit["id"]))
            assert row is not None
            return links.make_token(
                stack.platform,
                row,
                links.LinkPurpose.ARRIVAL,
                links.expires_at(row, links.LinkPurpose.ARRIVAL),
            )

    other_purpose = run(stack, arrival_token)
    assert codes(submit(stack, stack.mother, token=other_purpose, **form)) == ["NOT_FOUND"]

    starts = datetime.fromisoformat(visit["startsAt"])
    with time_machine.travel(starts + timedelta(seconds=1), tick=True):
        stack.login()
        assert codes(submit(stack, stack.mother, token=token, **form)) == ["LINK_EXPIRED"]
        page = stack.api.raw(LINK_PAGE, None, link=token)
        assert page["errors"][0]["extensions"]["code"] == "LINK_EXPIRED"
    stack.login()

    later = stack.slots(days=6)[0]
    moved = stack.api.mutate(
        "moveAppointment", {"appointmentId": visit["id"], "slotId": later["id"]}, APPOINTMENT, stack.mother
    )
    assert moved["errors"] == []
    assert codes(submit(stack, stack.mother, token=token, **form)) == ["LINK_EXPIRED"]
    assert submit(stack, stack.mother, token=forms_link(stack, visit["id"]), **form)["errors"] == []


def test_the_insurer_consent_records_her_consent(stack: AppointmentStack) -> None:
    api = stack.api
    requested = stack.book(stack.slots(SURGERY)[0]["id"], SURGERY, insurerPays=True)["appointment"]
    slot = stack.slots(SURGERY)[0]["id"]
    api.ok(
        "bookAppointmentTime",
        {"appointmentId": requested["id"], "slotId": slot},
        "appointment { id }",
        stack.operator,
    )
    token = forms_link(stack, requested["id"])
    assert api.gql(LINK_PAGE, None, link=token)["appointmentLink"]["formsMissing"] == [
        "HEALTH_DECLARATION",
        "INSURER_CONSENT",
    ]

    declined = submit(
        stack, stack.mother, token=token, kind="INSURER_CONSENT", answers={**CONSENT, "consent": False}
    )
    assert [(e["field"], e["code"]) for e in declined["errors"]] == [("answers.consent", "REQUIRED")]
    sent = submit(stack, stack.mother, token=token, kind="INSURER_CONSENT", answers=CONSENT)
    assert sent["errors"] == []
    assert sent["appointment"]["forms"][0]["answers"] == CONSENT

    async def consents() -> list[tuple[ConsentPurpose, str, bool]]:
        async with stack.platform.db.transaction() as session:
            rows = (await session.scalars(select(Consent))).all()
            return [(c.purpose, c.text_version, c.person_id == c.given_by_id) for c in rows]

    purpose = ConsentPurpose.INSURER_DISCLOSURE
    insurer = [c for c in run(stack, consents) if c[0] is purpose]
    assert insurer == [(purpose, CONSENT_TEXTS[purpose].version, True)]  # hers, given by herself
