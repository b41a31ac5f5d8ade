"""SMS delivery with two providers: failover when the first refuses a text or its network cannot deliver
it, still exactly one text per event; delivery reports in the SMS log for operators and the case's
clinician; forged, replayed, late and unknown reports change nothing — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from legetime.core.hookspecs import hookimpl
from legetime.core.platform.config import Settings
from legetime.core.platform.errors import ConfigError, ProviderError, ProviderUnavailable
from legetime.core.platform.providers import SMS, Capability, NoSettings, ProviderSpec
from legetime.core.platform.providers.sms import DeliveryStatus, SmsMessage, SmsReceipt
from legetime.core.platform.runtime import Platform
from legetime.plugins.sms.outbox import OutboxSmsProvider
from legetime.schema.app import create_app
from tests.api import Api
from tests.test_notices import MOTHERS_PHONE, OPERATOR, Consultation

SECRET = b"sms-delivery-test-secret"
LOG = (
    "{ operatorOverview { failedTexts sms(first: 10) { event status failureReason provider "
    "attempts { provider status error segments } } smsUsage { provider texts segments delivered failed } } }"
)


class Refusing(OutboxSmsProvider):
    """Says no at once, as a gateway does to a number it will not serve."""

    async def send(self, message: SmsMessage) -> SmsReceipt:
        raise ProviderError("21610: the recipient has opted out")


class FlakyOnce(OutboxSmsProvider):
    """Times out once (the outcome unknown), then works."""

    failed = False

    async def send(self, message: SmsMessage) -> SmsReceipt:
        if not FlakyOnce.failed:
            FlakyOnce.failed = True
            raise ProviderUnavailable("timed out")
        return await super().send(message)


class ReportedBeforeCommit(OutboxSmsProvider):
    """Its network reports the text before the job that sent it commits: ``send`` answers only once the
    test has posted the report (or after a few seconds)."""

    posted = threading.Event()

    async def send(self, message: SmsMessage) -> SmsReceipt:
        receipt = await super().send(message)
        await asyncio.to_thread(ReportedBeforeCommit.posted.wait, 10)
        return receipt


@dataclass(eq=False)  # a plugin is hashed by identity
class Gateways:
    """Two outboxes as two SMS providers, ``a`` and ``b``; ``a`` may be of another kind."""

    data_dir: Path
    first: type[OutboxSmsProvider] = OutboxSmsProvider

    @hookimpl
    def register_providers(self) -> list[ProviderSpec]:
        def spec(name: str, kind: type[OutboxSmsProvider]) -> ProviderSpec:
            def build(settings: Any, context: Any) -> OutboxSmsProvider:
                return kind(context.database, SECRET, echo=False, outbox=name)

            return ProviderSpec(Capability.SMS, name, build, NoSettings)

        return [spec("a", self.first), spec("b", OutboxSmsProvider)]


def report(
    provider_id: str, status: DeliveryStatus, error: str | None = None
) -> tuple[bytes, dict[str, str]]:
    at = datetime.now(UTC).isoformat()
    body = json.dumps({"id": provider_id, "status": status.value, "at": at, "error": error}).encode()
    signature = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return body, {"X-Outbox-Signature": signature, "Content-Type": "application/json"}


class Run:
    def __init__(self, api: Api, platform: Platform) -> None:
        self.api, self.platform = api, platform
        self.consultation = Consultation(api)
        self._operator: str | None = None

    @property
    def operator(self) -> str:
        """One login for the whole test: polling must not run into the login rate limit."""
        if self._operator is None:
            self._operator = self.api.login(OPERATOR)
        return self._operator

    def sent(self, name: str) -> list[Any]:
        outbox = self.platform.providers.get(SMS, name)
        return asyncio.run(outbox.messages())  # type: ignore[attr-defined]

    def post(self, name: str, provider_id: str, status: DeliveryStatus, error: str | None = None) -> int:
        body, headers = report(provider_id, status, error)
        return self.api.client.post(f"/webhooks/sms/{name}", content=body, headers=headers).status_code

    def log(self) -> dict[str, Any]:
        return dict(self.api.gql(LOG, self.operator)["operatorOverview"])

    def notice(self) -> dict[str, Any]:
        return dict(self.log()["sms"][0])

    def clinicians_view(self) -> list[dict[str, Any]]:
        query = (
            "query($id: ID!) { node(id: $id) { ... on Case { textNotices { event status failureReason } } } }"
        )
        data = self.api.gql(query, self.consultation.clinician, id=self.consultation.case_id)
        return list(data["node"]["textNotices"])


@pytest.fixture
def run(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[Run]:
    from tests.conftest import seed_demo

    providers, first = getattr(request, "param", (["a", "b"], OutboxSmsProvider))
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    seed_demo(settings)
    settings = settings.model_copy(update={"sms_providers": providers})
    platform = Platform.create(settings, extra_plugins=[Gateways(tmp_path, first)], load_entry_points=False)
    with TestClient(create_app(platform)) as client:  # jobs run in this process, as `legetime serve`
        yield Run(Api(client), platform)


def test_a_text_the_first_network_cannot_deliver_goes_through_the_second_once(run: Run) -> None:
    run.consultation.answer()
    (first,) = run.api.wait_for(lambda: run.sent("a"), "the first provider's text")
    assert first.to == MOTHERS_PHONE and run.sent("b") == []

    assert run.post("a", first.provider_id, DeliveryStatus.FAILED, "30003: unreachable handset") == 204
    (second,) = run.api.wait_for(lambda: run.sent("b"), "the failover text")
    assert second.body == first.body and second.reference == f"{first.reference}/b"

    # The same report again, and the first network's late word: nothing more is sent.
    assert run.post("a", first.provider_id, DeliveryStatus.FAILED, "30003: unreachable handset") == 204
    assert run.post("a", first.provider_id, DeliveryStatus.DELIVERED) == 204
    assert run.post("b", second.provider_id, DeliveryStatus.DELIVERED) == 204
    assert run.api.wait_for(lambda: run.notice()["status"] == "delivered", "the delivery report")
    assert len(run.sent("a")) == 1 and len(run.sent("b")) == 1

    log = run.log()
    notice = log["sms"][0]
    assert notice["provider"] == "b" and notice["failureReason"] == "30003: unreachable handset"
    assert notice["attempts"] == [
        {"provider": "a", "status": "failed", "error": "30003: unreachable handset", "segments": 1},
        {"provider": "b", "status": "delivered", "error": None, "segments": 1},
    ]
    assert log["failedTexts"] == 0
    assert log["smsUsage"] == [
        {"provider": "a", "texts": 1, "segments": 1, "delivered": 0, "failed": 1},
        {"provider": "b", "texts": 1, "segments": 1, "delivered": 1, "failed": 0},
    ]
    assert run.clinicians_view() == [
        {"event": "answered", "status": "delivered", "failureReason": "30003: unreachable handset"}
    ]


@pytest.mark.parametrize("run", [(["a", "b"], Refusing)], indirect=True)
def test_a_text_the_first_provider_refuses_goes_through_the_second(run: Run) -> None:
    run.consultation.answer()
    (text,) = run.api.wait_for(lambda: run.sent("b"), "the second provider's text")
    assert text.to == MOTHERS_PHONE
    notice = run.api.wait_for(lambda: run.notice()["status"] == "sent" and run.notice(), "the notice")
    assert [a["status"] for a in notice["attempts"]] == ["refused", "sent"]
    assert notice["attempts"][0]["error"].endswith("21610: the recipient has opted out")


@pytest.mark.parametrize("run", [(["a", "b"], FlakyOnce)], indirect=True)
def test_an_unknown_outcome_is_retried_with_the_same_provider_not_failed_over(run: Run) -> None:
    FlakyOnce.failed = False
    run.consultation.answer()
    run.api.wait_for(lambda: run.sent("a"), "the retried text", within=60)
    assert run.sent("b") == [] and FlakyOnce.failed


@pytest.mark.parametrize("run", [(["a"], OutboxSmsProvider)], indirect=True)
def test_a_text_no_provider_delivers_is_failed_for_operators_and_the_clinician(run: Run) -> None:
    run.consultation.answer()
    (text,) = run.api.wait_for(lambda: run.sent("a"), "the text")
    assert run.post("a", text.provider_id, DeliveryStatus.FAILED, "30005: unknown destination") == 204
    run.api.wait_for(lambda: run.notice()["status"] == "failed", "the failed notice")
    assert run.log()["failedTexts"] == 1
    assert run.clinicians_view() == [
        {"event": "answered", "status": "failed", "failureReason": "30005: unknown destination"}
    ]
    failed = run.api.gql('{ operatorOverview { sms(status: "failed") { event } } }', run.operator)
    assert failed["operatorOverview"]["sms"] == [{"event": "answered"}]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: one writer at a time
@pytest.mark.parametrize("run", [(["a", "b"], ReportedBeforeCommit)], indirect=True)
def test_a_report_that_overtakes_the_send_is_applied_once_the_send_commits(run: Run) -> None:
    ReportedBeforeCommit.posted.clear()
    run.consultation.answer()
    (first,) = run.api.wait_for(lambda: run.sent("a"), "the first provider's text")
    # The job that sent it has not committed: the SMS log does not know this message yet.
    assert run.post("a", first.provider_id, DeliveryStatus.FAILED, "30003: unreachable handset") == 204
    assert run.notice()["attempts"] == []
    ReportedBeforeCommit.posted.set()

    (second,) = run.api.wait_for(lambda: run.sent("b"), "the failover text")
    assert run.post("b", second.provider_id, DeliveryStatus.DELIVERED) == 204
    notice = run.api.wait_for(lambda: run.notice()["status"] == "delivered" and run.notice(), "the delivery")
    assert [(a["provider"], a["status"]) for a in notice["attempts"]] == [("a", "failed"), ("b", "delivered")]
    assert len(run.sent("a")) == 1 and len(run.sent("b")) == 1


def test_forged_unknown_and_stray_reports(run: Run) -> None:
    run.consultation.answer()
    (text,) = run.api.wait_for(lambda: run.sent("a"), "the text")
    body, headers = report(text.provider_id, DeliveryStatus.FAILED)
    forged = {**headers, "X-Outbox-Signature": "0" * 64}
    assert run.api.client.post("/webhooks/sms/a", content=body, headers=forged).status_code == 400
    assert run.api.client.post("/webhooks/sms/nobody", content=body, headers=headers).status_code == 404
    assert run.post("a", "outbox-not-ours", DeliveryStatus.FAILED) == 204  # acknowledged, nothing to do
    assert run.notice()["status"] == "sent" and run.sent("b") == []


def test_only_the_cases_clinician_sees_its_texts(run: Run) -> None:
    run.consultation.answer()
    run.api.wait_for(lambda: run.sent("a"), "the text")
    query = "query($id: ID!) { node(id: $id) { ... on Case { textNotices { status } } } }"
    body = run.api.raw(query, run.consultation.mother, id=run.consultation.case_id)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_provider_named_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="named twice"):
        Platform.create(
            Settings(data_dir=tmp_path, sms_providers=["outbox", "outbox"]), load_entry_points=False
        )
