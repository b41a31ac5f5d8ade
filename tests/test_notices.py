"""SMS notices in order, and only while true: question, reply and answer land before any notice job runs,
then the jobs run in every order (and on real dramatiq workers) — on SQLite and PostgreSQL. Each notice
goes out once, in the order of its events, or not at all if it is no longer true when its job runs."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from legetime.core.consultation.notifications import SEND_SMS_JOB
from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.db.models import OutboxJob, OutboxStatus
from legetime.core.platform.jobs.runner import JobRunner, run_job
from legetime.core.platform.providers import SMS
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.conftest import seed_demo

CLINICIAN, OPERATOR, MOTHER = (DEMO_PEOPLE[i].national_id for i in range(3))
MOTHERS_PHONE = DEMO_PEOPLE[2].phone


@pytest.fixture
def settings_on(tmp_path: Any, database_url: str) -> Settings:
    """Demo people in a migrated database, on SQLite and on PostgreSQL."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    seed_demo(settings)
    return settings


class Consultation:
    """One case in review, driven over HTTP; its jobs wait until the test runs them."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.mother, self.clinician = api.login(MOTHER), api.login(CLINICIAN)
        self.case_id = api.ok("startCase", {}, "case { id }", self.mother)["case"]["id"]
        answers = {"caseId": self.case_id, "answers": complete_answers(api, for_child=False)}
        api.ok("answerQuestionnaire", answers, "case { id }", self.mother)
        version = api.gql("{ consentTexts { purpose version } }")["consentTexts"][0]["version"]
        consent = {"purpose": "COMMUNICATION_STORAGE", "textVersion": version}
        api.ok("grantConsent", consent, "consent { granted }", self.mother)
        api.ok("submitCase", {"caseId": self.case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, self.mother)
        api.ok("claimCase", {"caseId": self.case_id}, "case { id }", self.clinician)

    def ask(self, body: str = "Klør det?") -> str:
        payload = self.api.ok(
            "sendMessage",
            {"caseId": self.case_id, "body": body},
            "message { id } case { status }",
            self.clinician,
        )
        assert payload["case"]["status"] == "AWAITING_PATIENT"
        return str(payload["message"]["id"])

    def reply(self, body: str = "Ja, om kvelden.") -> None:
        payload = self.api.ok(
            "sendMessage", {"caseId": self.case_id, "body": body}, "case { status }", self.mother
        )
        assert payload["case"]["status"] == "IN_REVIEW"

    def answer(self) -> str:
        answer = {"caseId": self.case_id, "body": "Fuktighetskrem morgen og kveld.", "outcome": "ADVICE"}
        payload = self.api.ok("answerCase", answer, "message { id } case { status }", self.clinician)
        assert payload["case"]["status"] == "ANSWERED"
        return str(payload["message"]["id"])

    def notices(self) -> list[tuple[str, str]]:
        """(event, status) of the case's notices as operators see them, oldest first."""
        operator = self.api.login(OPERATOR)
        rows = self.api.gql("{ operatorOverview { sms(first: 50) { event status } } }", operator)
        return [(n["event"], n["status"]) for n in reversed(rows["operatorOverview"]["sms"])]


@pytest.fixture
def consultation(settings_on: Settings) -> Iterator[tuple[Consultation, Platform]]:
    platform = Platform.create(settings_on, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:  # the jobs wait
        yield Consultation(Api(client)), platform


def sent(platform: Platform) -> list[tuple[str, str]]:
    """(event, message id) of each SMS the provider took, in the order it took them."""
    stored = asyncio.run(platform.providers.get(SMS).messages())  # type: ignore[attr-defined]
    assert {m.to for m in stored} <= {MOTHERS_PHONE}
    return [(m.reference.split(":")[1], m.reference.split(":")[2]) for m in reversed(stored)]


async def _sms_jobs(platform: Platform) -> list[str]:
    async with platform.db.transaction() as session:
        jobs = await session.scalars(
            select(OutboxJob).where(OutboxJob.name == SEND_SMS_JOB).order_by(OutboxJob.created_at)
        )
        return [str(job.id) for job in jobs]


def _one_by_one(settings: Settings, order: Callable[[list[str]], list[str]]) -> None:
    async def run() -> None:
        platform = Platform.create(settings, load_entry_points=False)
        try:
            for job_id in order(await _sms_jobs(platform)):
                await run_job(platform, platform.db, job_id)
        finally:
            await platform.close()

    asyncio.run(run())


def _on_workers(settings: Settings) -> None:
    """Every notice job at once on two dramatiq worker threads, handed over newest first."""

    async def run() -> None:
        platform = Platform.create(settings, load_entry_points=False)
        runner = JobRunner(platform)
        runner.start_workers(threads=2)
        try:
            ids = await _sms_jobs(platform)
            for job_id in reversed(ids):
                runner.actor.send(job_id)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                async with platform.db.transaction() as session:
                    jobs = (
                        await session.scalars(select(OutboxJob).where(OutboxJob.name == SEND_SMS_JOB))
                    ).all()
                    if all(job.status is OutboxStatus.DONE for job in jobs):
                        return
                await asyncio.sleep(0.05)
            raise AssertionError("the notice jobs did not finish")
        finally:
            runner.stop()
            await platform.close()

    asyncio.run(run())


ORDERS: dict[str, Callable[[Settings], None]] = {
    "as_enqueued": lambda s: _one_by_one(s, lambda ids: ids),
    "reversed": lambda s: _one_by_one(s, lambda ids: ids[::-1]),
    "shuffled": lambda s: _one_by_one(s, lambda ids: random.Random(7).sample(ids, len(ids))),
    "workers": _on_workers,
}


@pytest.mark.parametrize("order", ORDERS)
def test_question_reply_and_answer_before_any_job_send_the_answer_only(
    consultation: tuple[Consultation, Platform], settings_on: Settings, order: str
) -> None:
    case, platform = consultation
    case.ask()
    case.reply()
    case.ask("Har du feber?")
    case.reply("Nei.")
    answer = case.answer()

    ORDERS[order](settings_on)

    assert sent(platform) == [("answered", answer)]  # she had replied to both questions: no stale texts
    assert case.notices() == [
        ("follow_up", "skipped_not_awaiting"),
        ("follow_up", "skipped_not_awaiting"),
        ("answered", "sent"),
    ]


@pytest.mark.parametrize("order", ORDERS)
def test_a_question_she_has_replied_to_is_not_texted_after_her_reply(
    consultation: tuple[Consultation, Platform], settings_on: Settings, order: str
) -> None:
    case, platform = consultation
    case.ask()
    case.reply()
    second = case.ask("Har du feber?")  # the case waits for her again, for the second question

    ORDERS[order](settings_on)

    assert sent(platform) == [("follow_up", second)]
    assert case.notices() == [("follow_up", "skipped_replied"), ("follow_up", "sent")]


@pytest.mark.parametrize("order", ORDERS)
def test_texts_that_are_all_still_true_go_out_in_the_order_of_their_events(
    consultation: tuple[Consultation, Platform], settings_on: Settings, order: str
) -> None:
    case, platform = consultation
    first, second = case.ask(), case.ask("Og har du feber?")  # two questions before she replies

    ORDERS[order](settings_on)

    assert sent(platform) == [("follow_up", first), ("follow_up", second)]
    assert case.notices() == [("follow_up", "sent"), ("follow_up", "sent")]


def test_the_answer_waits_while_the_question_is_still_being_texted(
    consultation: tuple[Consultation, Platform], settings_on: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question's text is with the provider (slow) when she replies and the answer comes; the answer's
    job, on another worker, must not overtake it. Neither the reply nor the answer waits for the SMS."""
    if settings_on.resolved_database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one transaction at a time: a job sending holds back every request")
    case, platform = consultation
    question = case.ask()
    jobs = Platform.create(settings_on, load_entry_points=False)
    provider = jobs.providers.get(SMS)
    real_send = provider.send
    sending, release, answered = threading.Event(), threading.Event(), threading.Event()

    async def slow_send(message: Any) -> Any:
        if ":follow_up:" in message.reference:
            sending.set()
            await asyncio.to_thread(release.wait, 20)
        return await real_send(message)

    monkeypatch.setattr(provider, "send", slow_send)
    failures: list[BaseException] = []

    def worker() -> None:
        async def run() -> None:
            try:
                (question_job,) = await _sms_jobs(jobs)
                texting = asyncio.create_task(run_job(jobs, jobs.db, question_job))
                await asyncio.to_thread(answered.wait, 20)
                answer_job = (await _sms_jobs(jobs))[1]
                await asyncio.gather(texting, run_job(jobs, jobs.db, answer_job))
            finally:
                await jobs.close()

        try:
            asyncio.run(run())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert sending.wait(20), "the question's text never reached the provider"
        started = time.monotonic()
        case.reply()
        answer = case.answer()
        answered.set()
        assert time.monotonic() - started < 10, "her reply or the answer waited for the SMS provider"
        time.sleep(0.5)  # the answer's job runs meanwhile
        assert sent(platform) == []
    finally:
        release.set()
        thread.join(60)
    assert not failures, failures
    assert sent(platform) == [("follow_up", question), ("answered", answer)]
