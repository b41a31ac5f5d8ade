"""Bad input through GraphQL: each is a typed error (`errors { field code message }`) and nothing is
half-stored. Also the guardianship hook and logout."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Settings
from legetime.core.platform.db import models
from legetime.core.platform.db.engine import Database
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.conftest import seed_demo
from tests.migrated import upgrade
from tests.support import synthetic_national_id

MOTHER, CHILD, CLINICIAN = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[3].national_id, DEMO_PEOPLE[0].national_id
ERROR = "errors { field code message }"


def counts(platform: Platform) -> dict[str, int]:
    async def count() -> dict[str, int]:
        database = Database(platform.settings.resolved_database_url)
        try:
            async with database.transaction() as session:
                return {
                    model.__tablename__: int(
                        await session.scalar(select(func.count()).select_from(model)) or 0
                    )
                    for model in (
                        models.Case,
                        models.Person,
                        models.PaymentReservation,
                        models.Attachment,
                        models.Message,
                        models.OutboxJob,
                        models.Consent,
                    )
                }
        finally:
            await database.dispose()

    return asyncio.run(count())


def errors(payload: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["code"]) for e in payload["errors"]]


@pytest.fixture
def mother(embedded: tuple[Api, Platform]) -> str:
    return embedded[0].login(MOTHER)


def draft_case(api: Api, token: str, *, consent: bool = True, answers: bool = True) -> str:
    case_id = str(api.ok("startCase", {}, "case { id }", token)["case"]["id"])
    if answers:
        api.ok(
            "answerQuestionnaire",
            {"caseId": case_id, "answers": complete_answers(api, for_child=False)},
            "case { id }",
            token,
        )
    if consent:
        versions = {
            t["purpose"]: t["version"]
            for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
        }
        for purpose in ("COMMUNICATION_STORAGE", "IMAGE_STORAGE"):
            api.ok(
                "grantConsent",
                {"purpose": purpose, "textVersion": versions[purpose], "caseId": case_id},
                "consent { granted }",
                token,
            )
    return case_id


# --- starting a case -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("child", "expected"),
    [
        ({"nationalId": "05921550017", "guardianDeclared": True}, ("childNationalId", "INVALID_NATIONAL_ID")),
        ({"nationalId": "123", "guardianDeclared": True}, ("childNationalId", "INVALID_NATIONAL_ID")),
        (
            {"nationalId": synthetic_national_id(date(2008, 1, 1)), "guardianDeclared": True},
            ("childNationalId", "CHILD_TOO_OLD"),
        ),
        (
            {"nationalId": CHILD, "guardianDeclared": False},
            ("guardianDeclared", "GUARDIANSHIP_NOT_CONFIRMED"),
        ),
        ({"nationalId": MOTHER, "guardianDeclared": True}, ("childNationalId", "INVALID")),
    ],
)
def test_bad_child(
    embedded: tuple[Api, Platform], mother: str, child: dict[str, Any], expected: tuple[str, str]
) -> None:
    api, platform = embedded
    before = counts(platform)
    payload = api.mutate("startCase", {"child": child}, "case { id }", mother)
    assert payload["case"] is None and errors(payload) == [expected]
    assert counts(platform) == before


def test_invalid_phone_changes_nothing(embedded: tuple[Api, Platform], mother: str) -> None:
    api, _ = embedded
    for bad in ("12345", "+47 22 00 00 00", "ring meg"):
        payload = api.mutate("updateMyPhone", {"phone": bad}, "me { phone }", mother)
        assert errors(payload) == [("phone", "INVALID_PHONE")], bad
    assert api.gql("{ me { phone } }", mother)["me"]["phone"] == "+4741000003"  # the demo number, unchanged


# --- answers, images, consent ----------------------------------------------------------------------


def test_incomplete_or_invalid_answers_are_refused_per_question(
    embedded: tuple[Api, Platform], mother: str
) -> None:
    api, platform = embedded
    case_id = draft_case(api, mother, answers=False)
    bad = api.mutate(
        "answerQuestionnaire",
        {
            "caseId": case_id,
            "answers": [{"questionId": "pain", "value": 99}, {"questionId": "nope", "value": 1}],
        },
        "case { answers }",
        mother,
    )
    assert {code for _, code in errors(bad)} == {"INVALID"}
    assert {field for field, _ in errors(bad)} == {"answers.pain", "answers.nope"}
    before = counts(platform)
    payload = api.mutate("submitCase", {"caseId": case_id, "idempotencyKey": "a"}, "case { status }", mother)
    assert len(payload["errors"]) > 1 and {code for _, code in errors(payload)} == {"REQUIRED"}
    assert all(field.startswith("answers.") for field, _ in errors(payload))
    assert counts(platform) == before


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_non_images_and_oversized_uploads_are_refused(embedded: tuple[Api, Platform], mother: str) -> None:
    api, platform = embedded
    case_id = draft_case(api, mother)
    before = counts(platform)
    objects = platform.settings.data_dir / "objects"
    for data, code in [
        (b"%PDF-1.7 not an image", "INVALID_IMAGE"),
        (b"GIF89a" + b"\x00" * 100, "INVALID_IMAGE"),
        (tiny_png()[:30], "INVALID_IMAGE"),
        (b"\xff\xd8\xff" + b"\x00" * (11 * 1024 * 1024), "IMAGE_TOO_LARGE"),
    ]:
        payload = api.upload(case_id, data, mother)
        assert [e["code"] for e in payload["errors"]] == [code]
    assert counts(platform) == before
    assert not any(objects.rglob("*.png")) and not any(objects.rglob("*.jpg"))


def test_missing_consents(embedded: tuple[Api, Platform], mother: str) -> None:
    api, platform = embedded
    case_id = draft_case(api, mother, consent=False)
    before = counts(platform)
    image = api.upload(case_id, tiny_png(), mother)
    assert [(e["field"], e["code"]) for e in image["errors"]] == [("consent", "CONSENT_REQUIRED")]
    submit = api.mutate("submitCase", {"caseId": case_id, "idempotencyKey": "a"}, "case { status }", mother)
    assert errors(submit) == [("consent", "CONSENT_REQUIRED")]
    assert counts(platform) == before
    stale = api.mutate(
        "grantConsent", {"purpose": "AI_JOURNAL", "textVersion": "1999-01"}, "consent { granted }", mother
    )
    assert errors(stale) == [("textVersion", "INVALID")]


# --- submitting and the state machine -------------------------------------------------------------


def test_declined_card_keeps_the_draft(embedded: tuple[Api, Platform], mother: str) -> None:
    api, platform = embedded
    case_id = draft_case(api, mother)
    before = counts(platform)
    payload = api.mutate(
        "submitCase",
        {"caseId": case_id, "idempotencyKey": "a", "paymentMethod": "card_declined"},
        "case { status }",
        mother,
    )
    assert [code for _, code in errors(payload)] == ["PAYMENT_DECLINED"]
    assert counts(platform) == before
    case = api.gql("query($id: ID!) { case(id: $id) { status payment { status } } }", mother, id=case_id)[
        "case"
    ]
    assert case == {"status": "DRAFT", "payment": None}
    retry = api.ok(
        "submitCase", {"caseId": case_id, "idempotencyKey": "b"}, SUBMIT_FIELDS, mother
    )  # another card
    assert retry["case"]["status"] == "SUBMITTED"


def test_duplicate_submit_never_reserves_twice(embedded: tuple[Api, Platform], mother: str) -> None:
    api, platform = embedded
    case_id = draft_case(api, mother)
    first = api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "once"}, SUBMIT_FIELDS, mother)
    again = api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "once"}, SUBMIT_FIELDS, mother)
    assert first == again
    other_key = api.mutate(
        "submitCase", {"caseId": case_id, "idempotencyKey": "twice"}, "case { status }", mother
    )
    assert [code for _, code in errors(other_key)] == ["ILLEGAL_TRANSITION"]
    assert counts(platform)["payment_reservation"] == 1


def test_illegal_transitions_are_typed_errors(embedded: tuple[Api, Platform], mother: str) -> None:
    api, platform = embedded
    case_id = draft_case(api, mother)
    close = api.mutate("closeCase", {"caseId": case_id}, "case { status }", mother)
    assert [code for _, code in errors(close)] == ["ILLEGAL_TRANSITION"]
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, mother)
    clinician = api.login(CLINICIAN)
    answer = {"caseId": case_id, "body": "Svar", "outcome": "ADVICE"}
    assert [code for _, code in errors(api.mutate("answerCase", answer, "case { id }", clinician))] == [
        "NOT_FOUND"
    ]
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    again = api.mutate("claimCase", {"caseId": case_id}, "case { id }", clinician)
    assert [code for _, code in errors(again)] == ["ILLEGAL_TRANSITION"]
    narcotic = {
        **answer,
        "outcome": "PRESCRIPTION",
        "prescription": {"medication": "Oksykodon", "group": "A"},
    }
    before = counts(platform)
    refused = api.mutate("answerCase", narcotic, "case { status }", clinician)
    assert errors(refused) == [("prescription", "PRESCRIPTION_NOT_ALLOWED")]
    assert counts(platform) == before
    api.ok("answerCase", answer, "case { id }", clinician)
    cancel = api.mutate("cancelCase", {"caseId": case_id}, "case { status }", mother)
    assert [code for _, code in errors(cancel)] == ["ILLEGAL_TRANSITION"]
    draft = api.mutate("draftJournalNote", {"caseId": case_id}, "case { id }", clinician)
    assert errors(draft) == [("consent", "CONSENT_REQUIRED")]


def test_logout_revokes_the_token(embedded: tuple[Api, Platform], mother: str) -> None:
    api, _ = embedded
    assert api.gql("{ me { givenName } }", mother)["me"]["givenName"]
    assert api.gql("mutation { logout { ok errors { code } } }", mother)["logout"] == {
        "ok": True,
        "errors": [],
    }
    assert api.gql("{ me { givenName } }", mother)["me"] is None


# --- the guardianship hook -------------------------------------------------------------------------


class PopulationRegister:
    """Refuses one child, has no opinion on the others."""

    def __init__(self, refused_child: str) -> None:
        self.refused_child = refused_child
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    async def verify_guardianship(self, guardian_national_id: str, child_national_id: str) -> bool | None:
        self.asked.append((guardian_national_id, child_national_id))
        return False if child_national_id == self.refused_child else None


@pytest.fixture
def with_register(tmp_path: Path) -> Iterator[tuple[Api, PopulationRegister]]:
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    register = PopulationRegister(refused_child=CHILD)
    platform = Platform.create(settings, extra_plugins=[register], load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        yield Api(client), register


def test_hook_verify_guardianship(with_register: tuple[Api, PopulationRegister]) -> None:
    api, register = with_register
    mother = api.login(MOTHER)
    refused = api.mutate(
        "startCase", {"child": {"nationalId": CHILD, "guardianDeclared": True}}, "case { id }", mother
    )
    assert errors(refused) == [("childNationalId", "GUARDIANSHIP_NOT_CONFIRMED")]
    other = synthetic_national_id(date(2016, 2, 2))
    api.ok("startCase", {"child": {"nationalId": other, "guardianDeclared": True}}, "case { id }", mother)
    assert register.asked == [(MOTHER, CHILD), (MOTHER, other)]


def test_answered_cases_close_by_themselves_and_are_charged(
    embedded: tuple[Api, Platform], mother: str
) -> None:
    """After ``auto_close_hours`` an answered case closes itself (frozen clock) and the fee is captured."""
    from datetime import timedelta

    from legetime.core.consultation.cases import close_answered_cases
    from legetime.core.platform.db.base import utcnow

    api, platform = embedded
    case_id = draft_case(api, mother)
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, mother)
    clinician = api.login(CLINICIAN)
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    api.ok("answerCase", {"caseId": case_id, "body": "Svar", "outcome": "ADVICE"}, "case { id }", clinician)

    async def close_at(hours: float) -> int:
        database = Database(platform.settings.resolved_database_url)
        try:
            async with database.transaction() as session:
                return await close_answered_cases(session, platform, utcnow() + timedelta(hours=hours))
        finally:
            await database.dispose()

    assert asyncio.run(close_at(71)) == 0
    assert asyncio.run(close_at(73)) == 1
    assert asyncio.run(close_at(200)) == 0  # closed once
    query = "query($id: ID!) { case(id: $id) { status payment { status } } }"
    done = api.wait_for(
        lambda: (c := api.gql(query, mother, id=case_id)["case"])["payment"]["status"] == "captured" and c,
        "capture",
    )
    assert done["status"] == "CLOSED"
