"""The fee around the consultation when the payer must approve (3-D Secure, the Vipps app), when webhooks
arrive, are forged or are lost, when the payer walks away, and when a capture job gave up: the case is
submitted exactly when the provider says the money is reserved, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from legetime.core.consultation.submission import reconcile
from legetime.core.demo import DEMO_PEOPLE
from legetime.core.hookspecs import hookimpl
from legetime.core.platform import providers
from legetime.core.platform.config import Settings
from legetime.core.platform.db import models
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.providers import Capability, ProviderSpec
from legetime.core.platform.providers.payment import PaymentMethodKind, PaymentOption
from legetime.core.platform.runtime import Platform
from legetime.plugins.payments import fake
from legetime.schema.app import create_app
from legetime.schema.mutation import global_uuid
from tests.api import SUBMIT_FIELDS, Api, complete_answers
from tests.conftest import seed_demo
from tests.migrated import upgrade

MOTHER, CLINICIAN = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[0].national_id
PAYMENT = "case { id status payment { status authorized captured released actionUrl } }"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    return settings


@pytest.fixture
def app(settings: Settings) -> Iterator[tuple[Api, Platform]]:
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        yield Api(client), platform


def ready_case(api: Api, token: str) -> str:
    case_id = str(api.ok("startCase", {}, "case { id }", token)["case"]["id"])
    answers = complete_answers(api, for_child=False)
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", token)
    version = api.gql("{ consentTexts { purpose version } }")["consentTexts"][0]["version"]
    consent = {"purpose": "COMMUNICATION_STORAGE", "textVersion": version}
    api.ok("grantConsent", consent, "consent { granted }", token)
    return case_id


def submit_3ds(api: Api, token: str, case_id: str, key: str = "k1") -> dict[str, Any]:
    submit = {"caseId": case_id, "idempotencyKey": key, "paymentMethod": "card_3ds"}
    return dict(api.ok("submitCase", submit, PAYMENT, token)["case"])


def payment_id(platform: Platform, case_id: str) -> str:
    async def find() -> str:
        fresh = Platform.create(platform.settings, load_entry_points=False)
        try:
            async with fresh.db.transaction() as session:
                row = await session.scalar(
                    select(models.PaymentReservation).where(
                        models.PaymentReservation.case_id == global_uuid(case_id)
                    )
                )
                assert row is not None
                return row.provider_payment_id
        finally:
            await fresh.close()

    return asyncio.run(find())


def run_reconcile(platform: Platform, minutes_later: float) -> Any:
    async def go() -> Any:
        fresh = Platform.create(platform.settings, load_entry_points=False)
        try:
            async with fresh.db.transaction() as session:
                return await reconcile(session, fresh, utcnow() + timedelta(minutes=minutes_later))
        finally:
            await fresh.close()

    return asyncio.run(go())


def case_payment(api: Api, case_id: str, token: str) -> dict[str, Any]:
    query = f"query($id: ID!) {{ {PAYMENT.replace('case {', 'case(id: $id) {', 1)} }}"
    return dict(api.gql(query, token, id=case_id)["case"])


def test_the_patient_sees_the_payment_methods(app: tuple[Api, Platform]) -> None:
    api, _ = app
    methods = api.gql("{ paymentMethods { provider method kind label isDefault } }")["paymentMethods"]
    assert methods == [
        {
            "provider": "fake",
            "method": None,
            "kind": "CARD",
            "label": "Betalingskort (test)",
            "isDefault": True,
        }
    ]


class _Wallet:
    """A second payment provider (the fake under another name) offering an app and a card."""

    @staticmethod
    def create(settings: Any, context: Any) -> Any:
        provider = fake.create_provider(fake.FakePaymentSettings(), context)
        provider.name = "wallet"
        provider.payment_options = (  # type: ignore[misc]
            PaymentOption(PaymentMethodKind.WALLET, "Vipps", "WALLET"),
            PaymentOption(PaymentMethodKind.CARD, "Betalingskort", "CARD"),
        )
        return provider

    @hookimpl
    def register_providers(self) -> list[ProviderSpec]:
        return [ProviderSpec(Capability.PAYMENT, "wallet", self.create, description="A wallet")]


def test_with_several_providers_the_patient_chooses_app_or_card(settings: Settings) -> None:
    settings = settings.model_copy(update={"payment_providers": ["wallet", "fake"]})
    platform = Platform.create(settings, extra_plugins=[_Wallet()], load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        methods = Api(client).gql("{ paymentMethods { provider method kind label isDefault } }")[
            "paymentMethods"
        ]
    assert [(m["provider"], m["method"], m["kind"], m["label"], m["isDefault"]) for m in methods] == [
        ("wallet", "WALLET", "WALLET", "Vipps", True),
        ("wallet", "CARD", "CARD", "Betalingskort", False),
        ("fake", None, "CARD", "Betalingskort (test)", False),
    ]


def test_a_payment_that_needs_approval_submits_the_case_once_approved(app: tuple[Api, Platform]) -> None:
    api, _ = app
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    pending = submit_3ds(api, mother, case_id)
    assert pending["status"] == "DRAFT" and pending["payment"]["status"] == "pending"
    assert pending["payment"]["actionUrl"] and pending["payment"]["authorized"] == 0
    clinician = api.login(CLINICIAN)
    queue = api.gql("{ caseQueue(first: 10) { edges { node { id } } } }", clinician)["caseQueue"]["edges"]
    assert case_id not in [edge["node"]["id"] for edge in queue]  # not before the money is reserved

    again = submit_3ds(api, mother, case_id, key="k2")  # another key while one waits: no second payment
    assert again["payment"]["actionUrl"] == pending["payment"]["actionUrl"]

    early = api.mutate("confirmPayment", {"caseId": case_id}, "case { status }", mother)
    assert early["errors"] == [] and early["case"]["status"] == "DRAFT"  # not approved yet

    assert api.client.get(pending["payment"]["actionUrl"]).status_code == 200  # the page: nothing yet
    unseen = api.ok("confirmPayment", {"caseId": case_id}, "case { status }", mother)
    assert unseen["case"]["status"] == "DRAFT"
    assert api.client.post(pending["payment"]["actionUrl"]).status_code == 200  # the payer approves
    confirmed = api.ok("confirmPayment", {"caseId": case_id}, PAYMENT, mother)["case"]
    assert confirmed["status"] == "SUBMITTED" and confirmed["payment"]["authorized"] == 35000
    assert confirmed["payment"]["actionUrl"] is None
    assert api.ok("confirmPayment", {"caseId": case_id}, "case { status }", mother)["case"]["status"] == (
        "SUBMITTED"
    )


def test_a_verified_webhook_submits_the_case(app: tuple[Api, Platform]) -> None:
    api, platform = app
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    submit_3ds(api, mother, case_id)
    provider: Any = platform.providers.get(providers.PAYMENT, "fake")
    pid = payment_id(platform, case_id)
    asyncio.run(provider.approve(pid))
    headers, body = provider.webhook_for(pid, "payment.authorized")
    forged = {**headers, "Fake-Signature": headers["Fake-Signature"][:-4] + "0000"}
    assert api.client.post("/webhooks/payments/fake", content=body, headers=forged).status_code == 400
    assert api.client.post("/webhooks/payments/nope", content=body, headers=headers).status_code == 404
    assert case_payment(api, case_id, mother)["status"] == "DRAFT"  # a forged webhook changes nothing
    assert api.client.post("/webhooks/payments/fake", content=body, headers=headers).status_code == 204
    api.wait_for(lambda: case_payment(api, case_id, mother)["status"] == "SUBMITTED", "the submit")
    assert webhook_jobs(platform) == 1
    assert api.client.post("/webhooks/payments/fake", content=body, headers=headers).status_code == 204
    assert webhook_jobs(platform) == 1  # a replayed delivery is acknowledged and does nothing more
    headers, body = provider.webhook_for(pid, "payment.captured")
    assert api.client.post("/webhooks/payments/fake", content=body, headers=headers).status_code == 204
    assert webhook_jobs(platform) == 2  # a new notification is taken


def test_a_webhook_event_is_taken_once_however_it_is_redelivered(app: tuple[Api, Platform]) -> None:
    api, platform = app
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    submit_3ds(api, mother, case_id)
    provider: Any = platform.providers.get(providers.PAYMENT, "fake")
    pid = payment_id(platform, case_id)
    asyncio.run(provider.approve(pid))
    headers, body = provider.webhook_for(pid, "payment.authorized")
    assert api.client.post("/webhooks/payments/fake", content=body, headers=headers).status_code == 204
    # The same delivery at another address (a query parameter added), and the same event signed anew:
    assert (
        api.client.post("/webhooks/payments/fake?again=1", content=body, headers=headers).status_code == 204
    )
    event = json.loads(body)
    resent = json.dumps({**event, "created": event["created"] + 1}, separators=(",", ":")).encode()
    timestamp = event["created"] + 1
    signed = {**headers, "Fake-Signature": f"t={timestamp},v1={provider._sign(timestamp, resent)}"}
    assert api.client.post("/webhooks/payments/fake", content=resent, headers=signed).status_code == 204
    assert webhook_jobs(platform) == 1
    # Every provider sends JSON: anything else is refused unread.
    plain = {**headers, "Content-Type": "text/plain"}
    assert api.client.post("/webhooks/payments/fake", content=body, headers=plain).status_code == 415


def webhook_jobs(platform: Platform) -> int:
    async def count() -> int:
        fresh = Platform.create(platform.settings, load_entry_points=False)
        try:
            async with fresh.db.transaction() as session:
                rows = await session.scalars(
                    select(models.OutboxJob.id).where(models.OutboxJob.dedupe_key.startswith("webhook:fake:"))
                )
                return len(rows.all())
        finally:
            await fresh.close()

    return asyncio.run(count())


def test_a_lost_webhook_is_made_up_for_by_reconciliation(app: tuple[Api, Platform]) -> None:
    api, platform = app
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    submit_3ds(api, mother, case_id)
    provider: Any = platform.providers.get(providers.PAYMENT, "fake")
    asyncio.run(provider.approve(payment_id(platform, case_id)))  # approved; the webhook never comes
    assert run_reconcile(platform, minutes_later=1).refreshed == 0  # not stale yet
    result = run_reconcile(platform, minutes_later=20)
    assert (result.refreshed, result.submitted) == (1, 1)
    assert case_payment(api, case_id, mother)["status"] == "SUBMITTED"


def test_an_abandoned_payment_is_cancelled(app: tuple[Api, Platform]) -> None:
    api, platform = app
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    submit_3ds(api, mother, case_id)
    assert run_reconcile(platform, minutes_later=30).abandoned == 0
    assert run_reconcile(platform, minutes_later=61).abandoned == 1
    cancelled = api.wait_for(
        lambda: (p := case_payment(api, case_id, mother))["payment"]["status"] == "declined" and p,
        "the cancellation",
    )
    assert cancelled["status"] == "DRAFT" and cancelled["payment"]["authorized"] == 0
    assert cancelled["payment"]["actionUrl"] is None
    again = {"caseId": case_id, "idempotencyKey": "k2"}  # she may try again: a new payment
    assert api.ok("submitCase", again, PAYMENT, mother)["case"]["status"] == "SUBMITTED"


def test_a_capture_that_gave_up_is_retried_and_captures_once(settings: Settings) -> None:
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:  # the jobs wait
        api = Api(client)
        mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
        case_id = ready_case(api, mother)
        api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, mother)
        api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
        answer = {"caseId": case_id, "body": "Hvile og væske.", "outcome": "ADVICE"}
        api.ok("answerCase", answer, "case { id }", clinician)
        api.ok("closeCase", {"caseId": case_id}, "case { status }", mother)

    async def give_up() -> None:
        fresh = Platform.create(settings, load_entry_points=False)
        try:
            async with fresh.db.transaction() as session:
                await session.execute(
                    update(models.OutboxJob)
                    .where(models.OutboxJob.name == "payments.capture")
                    .values(status=models.OutboxStatus.FAILED)
                )
        finally:
            await fresh.close()

    asyncio.run(give_up())
    result = run_reconcile(platform, minutes_later=20)
    assert result.captures == 1
    again = run_reconcile(platform, minutes_later=21)  # one is on its way: not enqueued twice
    assert again.captures == 0
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform)) as client:  # the jobs run
        api = Api(client)
        mother = api.login(MOTHER)
        captured = api.wait_for(
            lambda: (p := case_payment(api, case_id, mother)["payment"])["status"] == "captured" and p,
            "the capture",
        )
        assert captured["captured"] == 35000


def test_an_answered_case_whose_hold_is_lapsing_is_closed_and_charged(app: tuple[Api, Platform]) -> None:
    api, platform = app
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    case_id = ready_case(api, mother)
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "k"}, SUBMIT_FIELDS, mother)
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    api.ok("answerCase", {"caseId": case_id, "body": "Hvile.", "outcome": "ADVICE"}, "case { id }", clinician)
    hold = case_payment(api, case_id, mother)
    assert hold["status"] == "ANSWERED"
    result = run_reconcile(platform, minutes_later=7 * 24 * 60)  # a week on: the hold lapses within a day
    assert result.closed_before_expiry == 1
    closed = api.wait_for(
        lambda: (p := case_payment(api, case_id, mother))["payment"]["status"] == "captured" and p,
        "the capture",
    )
    assert closed["status"] == "CLOSED"
