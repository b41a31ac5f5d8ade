"""The patient survey through GraphQL, with a simulated clock: a link by SMS three hours after a visit or a
closed consultation, only with consent, once (also when its job runs again), never after a cancellation;
the answer stored without identity, once; operators see aggregates, small groups suppressed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, inspect, select

from legetime.core.appointments import surveys, timed_texts
from legetime.core.platform.db.appointment_models import SurveyAnswer, SurveyInvitation, TimedText
from legetime.core.platform.db.models import AuditEvent
from legetime.core.platform.jobs.types import JobContext
from legetime.core.platform.providers import SMS
from tests.appointment_stack import APPOINTMENT, AppointmentStack, appointment_stack
from tests.test_video_appointments import at, book_video, early_morning, referred_case

SURVEY = "query($link: String!) { survey(token: $link) { kind expiresAt questions { id text } } }"
RESULTS = (
    "query($from: Date!, $to: Date!) { surveyResults(from: $from, to: $to) { kind answers suppressed "
    "questions { question { id } count mean distribution } } }"
)
LINK = re.compile(r"/s/([A-Za-z0-9_-]+)")


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(early_morning(), tick=True) as traveller:
        yield traveller


@pytest.fixture
def stack(clock: time_machine.Traveller, tmp_path: Path) -> Iterator[AppointmentStack]:
    with appointment_stack(tmp_path) as stack:
        yield stack


def consent(stack: AppointmentStack, token: str | None = None) -> None:
    texts = stack.api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    [version] = [t["version"] for t in texts if t["purpose"] == "PATIENT_SURVEY"]
    wanted = {"purpose": "PATIENT_SURVEY", "textVersion": version}
    stack.api.ok("grantConsent", wanted, "consent { granted }", token or stack.mother)


def texts(stack: AppointmentStack, about: str) -> list[Any]:
    """Survey texts the SMS provider took about one appointment or case (by id)."""
    assert stack.client.portal is not None
    messages = stack.platform.providers.get(SMS).messages  # type: ignore[attr-defined]
    stored = stack.client.portal.call(messages)
    return [m for m in stored if about in m.reference and "survey" in m.reference]


def sent_survey(stack: AppointmentStack, about: str) -> Any:
    """The one survey text about ``about``, once its job has committed: the provider takes the text inside
    the send job's transaction, so the link answers only a moment later."""
    [sent] = stack.api.wait_for(lambda: texts(stack, about), "the survey text")
    token = LINK.search(sent.body).group(1)  # type: ignore[union-attr]
    stack.api.wait_for(lambda: "errors" not in stack.api.raw(SURVEY, None, link=token), "the survey's commit")
    return sent


def run(stack: AppointmentStack, work: Any, *args: Any) -> Any:
    """``work(session, *args)`` in one transaction, in the app's event loop."""

    async def call() -> Any:
        async with stack.platform.db.transaction() as session:
            return await work(session, *args)

    assert stack.client.portal is not None
    return stack.client.portal.call(call)


def job(stack: AppointmentStack, handler: Any, payload: dict[str, Any]) -> None:
    """A job's handler run (again) as the worker runs it: a redelivery."""

    async def work(session: Any) -> None:
        await handler(JobContext(stack.platform, session, f"redelivered-{uuid.uuid4()}", 2), payload)

    run(stack, work)


def held_video(stack: AppointmentStack, clock: time_machine.Traveller) -> dict[str, Any]:
    """A video appointment today, held and completed by its clinician."""
    appointment = book_video(stack)
    at(clock, appointment["startsAt"], timedelta(minutes=1))
    wanted = {"appointmentId": appointment["id"]}
    done = stack.api.ok("completeAppointment", wanted, APPOINTMENT, stack.clinician)["appointment"]
    assert done["status"] == "COMPLETED"
    return dict(done)


def test_consent_gates_the_text_sent_once_and_never_after_a_cancellation(
    stack: AppointmentStack, clock: time_machine.Traveller
) -> None:
    without = held_video(stack, clock)
    clock.shift(timedelta(hours=3, minutes=1))
    stack.api.wait_for(lambda: _settled(stack, without["id"]), "the survey's job")
    assert _status(stack, without["id"]) == "skipped_no_consent"
    assert texts(stack, without["id"]) == []

    stack.login()
    consent(stack)
    cancelled = stack.book(stack.slots("video", days=1, span=0.5)[0]["id"], "video")["appointment"]
    stack.api.ok("cancelAppointment", {"appointmentId": cancelled["id"]}, "appointment { id }", stack.mother)
    visit = book_video(stack)
    at(clock, visit["startsAt"], timedelta(minutes=1))
    stack.api.ok("completeAppointment", {"appointmentId": visit["id"]}, "appointment { id }", stack.clinician)
    clock.shift(timedelta(hours=3, minutes=1))
    sent = sent_survey(stack, visit["id"])
    assert sent.body.startswith("Legetime: Hvordan opplevde du oss?") and LINK.search(sent.body)
    for health in ("Videokonsultasjon", "video", "Majorstuen"):
        assert health not in sent.body

    payload = {"appointment_id": visit["id"], "kind": TimedText.SURVEY.value, "plan": 1}
    job(stack, timed_texts.send_job, payload)  # redelivered
    assert len(texts(stack, visit["id"])) == 1
    assert run(stack, _count, SurveyInvitation) == 1
    clock.shift(timedelta(days=1))
    assert texts(stack, cancelled["id"]) == []  # nothing after a cancellation
    assert run(stack, _count, SurveyInvitation) == 1


def test_the_answer_is_stored_without_identity_once(
    stack: AppointmentStack, clock: time_machine.Traveller
) -> None:
    consent(stack)
    visit = held_video(stack, clock)
    clock.shift(timedelta(hours=3, minutes=1))
    sent = sent_survey(stack, visit["id"])
    token = LINK.search(sent.body).group(1)  # type: ignore[union-attr]

    logged = run(stack, _count, AuditEvent)
    shown = stack.api.gql(SURVEY, None, link=token)["survey"]  # no login: the link
    assert shown["kind"] == "VIDEO" and 3 <= len(shown["questions"]) <= 5
    scores = [{"question": q["id"], "score": 4} for q in shown["questions"]]
    bad = stack.api.mutate("answerSurvey", {"token": token, "scores": scores[:-1]}, "answered")
    assert [e["code"] for e in bad["errors"]] == ["REQUIRED"]
    out_of_range = [{**scores[0], "score": 6}, *scores[1:]]
    bad = stack.api.mutate("answerSurvey", {"token": token, "scores": out_of_range}, "answered")
    assert [e["code"] for e in bad["errors"]] == ["INVALID"]
    assert stack.api.ok("answerSurvey", {"token": token, "scores": scores}, "answered")["answered"] is True
    again = stack.api.mutate("answerSurvey", {"token": token, "scores": scores}, "answered")
    assert [e["code"] for e in again["errors"]] == ["CONFLICT"] and again["answered"] is False
    unknown = stack.api.mutate("answerSurvey", {"token": "x" * 32, "scores": scores}, "answered")
    assert [e["code"] for e in unknown["errors"]] == ["NOT_FOUND"]

    assert set(inspect(SurveyAnswer).columns.keys()) == {"id", "survey", "month", "clinic_id", "scores"}
    [row] = run(stack, _answers)
    month = datetime.fromisoformat(visit["startsAt"]).astimezone(stack.platform.settings.zone)
    assert (row.survey, row.month, row.clinic_id) == ("video", month.strftime("%Y-%m"), None)
    assert row.scores == {q["id"]: 4 for q in shown["questions"]}
    assert run(stack, _count, AuditEvent) == logged  # reading and answering it are about no one


def test_operators_see_aggregates_and_small_groups_are_suppressed(
    stack: AppointmentStack, clock: time_machine.Traveller
) -> None:
    month = datetime.now(stack.platform.settings.zone).strftime("%Y-%m")
    period = {"from": f"{month}-01", "to": f"{month}-01"}

    async def add(session: Any, count: int, base: int) -> None:
        for i in range(count):
            score = {q.id: (base + i) % 5 + 1 for q in surveys.QUESTIONS}
            session.add(SurveyAnswer(survey="visit", month=month, clinic_id=None, scores=score))

    run(stack, add, 4, 0)
    shown = {r["kind"]: r for r in stack.api.gql(RESULTS, stack.operator, **period)["surveyResults"]}
    assert shown["VISIT"] == {"kind": "VISIT", "answers": None, "suppressed": True, "questions": []}
    run(stack, add, 1, 4)
    visit = {r["kind"]: r for r in stack.api.gql(RESULTS, stack.operator, **period)["surveyResults"]}["VISIT"]
    assert (visit["answers"], visit["suppressed"]) == (5, False)
    first = visit["questions"][0]
    assert (first["count"], first["mean"], first["distribution"]) == (5, 3.0, [1, 1, 1, 1, 1])
    refused = stack.api.raw(RESULTS, stack.mother, **period)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_closed_consultation_sends_its_survey_once_with_consent(
    stack: AppointmentStack, clock: time_machine.Traveller
) -> None:
    consent(stack)
    case_id = referred_case(stack, close=True)
    node = _node(case_id)
    clock.shift(timedelta(hours=3, minutes=1))
    sent = sent_survey(stack, node)
    token = LINK.search(sent.body).group(1)  # type: ignore[union-attr]
    assert stack.api.gql(SURVEY, None, link=token)["survey"]["kind"] == "CONSULTATION"
    job(stack, surveys.case_survey_job, {"case_id": node})  # redelivered
    assert len(texts(stack, node)) == 1

    stack.login()
    cancelled = stack.api.ok("startCase", {}, "case { id }", stack.mother)["case"]["id"]
    stack.api.ok("cancelCase", {"caseId": cancelled}, "case { status }", stack.mother)
    job(stack, surveys.case_survey_job, {"case_id": _node(cancelled)})
    assert texts(stack, _node(cancelled)) == []


# --- helpers --------------------------------------------------------------------------------------------


def _node(case_id: str) -> str:
    from strawberry import relay

    try:
        return str(relay.GlobalID.from_id(case_id).node_id)
    except Exception:
        return case_id


async def _count(session: Any, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)))


async def _answers(session: Any) -> list[Any]:
    return list((await session.scalars(select(SurveyAnswer))).all())


def _status(stack: AppointmentStack, appointment_id: str) -> str | None:
    from legetime.core.platform.db.appointment_models import TimedTextPlan

    async def find(session: Any) -> str | None:
        return await session.scalar(
            select(TimedTextPlan.status).where(
                TimedTextPlan.appointment_id == uuid.UUID(appointment_id),
                TimedTextPlan.kind == TimedText.SURVEY,
            )
        )

    found: str | None = run(stack, find)
    return found


def _settled(stack: AppointmentStack, appointment_id: str) -> bool:
    return _status(stack, appointment_id) not in (None, "planned")
