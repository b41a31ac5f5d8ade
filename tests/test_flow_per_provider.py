"""The consultation with each payment provider, against its local fake over HTTP: submit → the payer
approves (3-D Secure, the provider's own page or app) → confirmPayment → answer → close → captured once.

A provider is added here with a harness: how to point the plugin at its fake (settings through the
environment, as an integrator configures it) and how the payer approves. A payment provider the plugins
offer without a harness fails the suite, like a provider without a contract driver.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.providers import Capability
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api, complete_answers
from tests.conftest import seed_demo
from tests.fakes.link_mobility import LinkMobilityFake
from tests.fakes.openai_chat import OpenAIChatFake
from tests.fakes.openid_provider import OpenIdProviderFake, Person
from tests.fakes.s3 import shared_server
from tests.fakes.server import ProviderFake, serve, serve_fake
from tests.fakes.stripe_api import THREE_DS, StripeFake
from tests.fakes.swedbank_pay import SwedbankPayFake
from tests.fakes.twilio import TwilioFake
from tests.fakes.vipps import VippsFake
from tests.migrated import upgrade
from tests.support import offered_specs, worker_process
from tests.test_consultation_flow import jpeg_with_gps

MOTHER, CLINICIAN = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[0].national_id
PAYMENT = "case { id status payment { provider status authorized captured actionUrl } }"


@dataclass(frozen=True)
class PaymentHarness:
    payment_method: str | None
    """What the client passes as ``paymentMethod`` for a payment the payer approves (a redirect flow)."""
    approve: Callable[[Any, Api, dict[str, Any]], None]
    """The payer approves the pending payment (given the provider fake, the client and the payment)."""
    fake: Callable[[], ProviderFake] | None = None
    """Makes the local fake of the provider's API; None for a provider that needs nothing running."""


@contextmanager
def started(harness: PaymentHarness, provider: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Serve the provider's fake and configure the plugin for it as an integrator would: environment
    variables ``LEGETIME_<prefix>_<NAME>``."""
    if harness.fake is None:
        yield None
        return
    spec = next(spec for spec in SPECS if spec.name == provider)
    prefix = spec.settings_model.model_config.get("env_prefix", "")
    with serve_fake(harness.fake()) as fake:
        for name, value in fake.plugin_settings().items():
            monkeypatch.setenv(f"{prefix}{name}", value)
        yield fake


def _fake_approve(handle: Any, api: Api, payment: dict[str, Any]) -> None:
    page = api.client.get(payment["actionUrl"], follow_redirects=False)  # the 3-D Secure page
    assert page.status_code == 200 and '<form method="post">' in page.text, page.text
    page = api.client.post(payment["actionUrl"], follow_redirects=False)  # she presses its button
    assert page.status_code == 303, page.text
    assert page.headers["location"] == "https://legetime.example/betaling/ferdig"  # back to the client


def _vipps_approve(fake: VippsFake, api: Api, payment: dict[str, Any]) -> None:
    fake.approve_at(payment["actionUrl"])  # she opens the link and approves in the Vipps app


def _stripe_approve(fake: StripeFake, api: Api, payment: dict[str, Any]) -> None:
    fake.complete_3ds_at(payment["actionUrl"])  # she passes 3-D Secure at her bank


def _swedbank_pay_approve(fake: SwedbankPayFake, api: Api, payment: dict[str, Any]) -> None:
    page = httpx.get(payment["actionUrl"], follow_redirects=False)  # she pays on Swedbank Pay's page
    assert page.status_code == 303, page.text
    assert page.headers["location"] == "https://legetime.example/betaling/ferdig"


HARNESSES: dict[str, PaymentHarness] = {
    "fake": PaymentHarness(payment_method="card_3ds", approve=_fake_approve),
    "vipps": PaymentHarness(payment_method="WALLET", approve=_vipps_approve, fake=VippsFake),
    "stripe": PaymentHarness(payment_method=THREE_DS, approve=_stripe_approve, fake=StripeFake),
    "swedbank-pay": PaymentHarness(
        payment_method="card", approve=_swedbank_pay_approve, fake=SwedbankPayFake
    ),
}

SPECS = offered_specs(Capability.PAYMENT)


@pytest.fixture(params=[spec.name for spec in SPECS])
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in HARNESSES:
        pytest.fail(
            f"payment provider {name!r} has no harness: add one to HARNESSES in {__file__}", pytrace=False
        )
    return name


def test_the_consultation_with_each_payment_provider(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = HARNESSES[provider]
    with started(harness, provider, monkeypatch) as handle:
        settings = Settings(data_dir=tmp_path / "data", payment_providers=[provider])
        upgrade(settings.resolved_database_url)
        seed_demo(settings)
        platform = Platform.create(settings, load_entry_points=False)
        with TestClient(create_app(platform)) as client:
            api = Api(client)
            methods = api.gql("{ paymentMethods { provider method isDefault } }")["paymentMethods"]
            assert {m["provider"] for m in methods} == {provider} and methods[0]["isDefault"]
            consultation(
                api,
                api.login(MOTHER),
                api.login(CLINICIAN),
                provider,
                harness.payment_method,
                lambda payment: harness.approve(handle, api, payment),
            )


def test_the_consultation_with_the_oidc_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Patient and clinician log in with BankID through a real OpenID provider running locally: startLogin →
    the provider → our callback → back to the app → completeLogin; then the whole consultation."""
    public_url = "https://legetime.example"
    op = OpenIdProviderFake(redirect_uris=[f"{public_url}/plugins/bankid-oidc/callback"])
    with serve(op.app) as issuer:
        op.issuer = issuer
        for name, value in {
            "IDENTITY_PROVIDERS": "bankid-oidc",
            "PUBLIC_URL": public_url,
            "BANKID_OIDC_ISSUER": issuer,
            "BANKID_OIDC_CLIENT_ID": op.client_id,
            "BANKID_OIDC_CLIENT_SECRET": op.client_secret,
        }.items():
            monkeypatch.setenv(f"LEGETIME_{name}", value)
        settings = Settings(data_dir=tmp_path / "data")
        upgrade(settings.resolved_database_url)
        seed_demo(settings)
        platform = Platform.create(settings, load_entry_points=False)
        with TestClient(create_app(platform), base_url=public_url) as client:
            api = Api(client)
            assert api.gql("{ loginProviders }")["loginProviders"] == ["bankid-oidc"]
            mother = oidc_login(api, op, DEMO_PEOPLE[2])
            clinician = oidc_login(api, op, DEMO_PEOPLE[0])
            me = api.gql("{ me { givenName roles } }", clinician)["me"]
            assert me["givenName"] == DEMO_PEOPLE[0].given_name and "clinician" in me["roles"]
            consultation(api, mother, clinician, "fake", None, None)


def oidc_login(api: Api, op: OpenIdProviderFake, who: Any) -> str:
    op.person = Person(who.national_id, who.given_name, who.family_name, "2000-01-01")
    start = {"provider": "bankid-oidc", "returnUrl": "https://legetime.example/innlogget"}
    started = api.ok("startLogin", start, "handle redirectUrl")
    at_callback = urlsplit(op.login(started["redirectUrl"]))  # she logs in with BankID at the provider
    back = api.client.get(f"{at_callback.path}?{at_callback.query}", follow_redirects=False)
    assert back.status_code == 303, back.text
    assert back.headers["location"].startswith("https://legetime.example/innlogget?")
    params = dict(parse_qsl(urlsplit(back.headers["location"]).query))
    completed = api.ok("completeLogin", {"handle": started["handle"], "params": params}, "token pending")
    assert completed["token"], completed
    return str(completed["token"])


def consultation(
    api: Api,
    mother: str,
    clinician: str,
    provider: str,
    payment_method: str | None,
    approve: Callable[[dict[str, Any]], None] | None,
    *,
    before_answer: Callable[[str], None] | None = None,
    after_answer: Callable[[str], None] | None = None,
) -> None:
    """Open, answer, consent, submit (reserve; the payer approves if the provider asks), answer, close, and
    the fee is captured exactly once. ``before_answer``/``after_answer`` get the case id: what a test of
    another capability's provider does on the way (an image, a journal note, the text she is sent)."""
    case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    answers = complete_answers(api, for_child=False)
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", mother)
    texts = {
        t["purpose"]: t["version"] for t in api.gql("{ consentTexts { purpose version } }")["consentTexts"]
    }
    for purpose in ("COMMUNICATION_STORAGE", "AI_JOURNAL"):
        consent = {"purpose": purpose, "textVersion": texts[purpose], "caseId": case_id}
        api.ok("grantConsent", consent, "consent { granted }", mother)

    submit = {
        "caseId": case_id,
        "idempotencyKey": "submit-1",
        "paymentProvider": provider,
        "paymentMethod": payment_method,
        "returnUrl": "https://legetime.example/betaling/ferdig",
    }
    submitted = api.ok("submitCase", submit, PAYMENT, mother)["case"]
    payment = submitted["payment"]
    assert payment["provider"] == provider
    if payment["status"] == "pending":
        assert submitted["status"] == "DRAFT" and payment["actionUrl"]
        assert approve is not None, f"{provider} asks the payer to approve, and the test cannot"
        approve(payment)
        submitted = api.ok("confirmPayment", {"caseId": case_id}, PAYMENT, mother)["case"]
    assert submitted["status"] == "SUBMITTED"
    assert submitted["payment"]["status"] == "authorized" and submitted["payment"]["authorized"] == 35000
    again = api.ok("submitCase", submit, PAYMENT, mother)["case"]  # a retry reserves nothing more
    assert again["payment"]["authorized"] == 35000

    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    if before_answer is not None:
        before_answer(case_id)
    answer = {"caseId": case_id, "body": "Hvile og væske.", "outcome": "ADVICE"}
    api.ok("answerCase", answer, "case { id }", clinician)
    if after_answer is not None:
        after_answer(case_id)
    api.ok("closeCase", {"caseId": case_id}, "case { status }", mother)
    query = "query($id: ID!) { case(id: $id) { payment { status captured } } }"
    captured = api.wait_for(
        lambda: (p := api.gql(query, mother, id=case_id)["case"]["payment"])["status"] == "captured" and p,
        "the capture",
    )
    assert captured["captured"] == 35000


# --- SMS, storage and journal providers: the consultation with each, against its local fake --------------


@dataclass(frozen=True)
class SmsHarness:
    """How a test sees an SMS provider's fake: the texts it took, and its network's delivery report."""

    fake: Callable[[], ProviderFake]
    texts: Callable[[Any], list[tuple[str, str]]]
    """(provider's message id, recipient) of each text the fake took."""
    report: Callable[[Any, str, bool], tuple[dict[str, str], bytes]]
    """Headers and body of the network's report that a text was delivered (True) or failed (False)."""


def _twilio_report(fake: TwilioFake, sid: str, delivered: bool) -> tuple[dict[str, str], bytes]:
    return fake.status_callback(sid, "delivered" if delivered else "undelivered", error_code=30003)


def _link_report(fake: LinkMobilityFake, message_id: str, delivered: bool) -> tuple[dict[str, str], bytes]:
    return fake.report(message_id, 1001 if delivered else 1006, datetime.now(UTC))


SMS_HARNESSES: dict[str, SmsHarness] = {
    "twilio": SmsHarness(
        fake=TwilioFake,
        texts=lambda fake: [(sid, m.to) for sid, m in fake.messages.items()],
        report=_twilio_report,
    ),
    "link-mobility": SmsHarness(
        fake=LinkMobilityFake,
        texts=lambda fake: [(m["messageId"], m["destination"]) for m in fake.messages],
        report=_link_report,
    ),
}
SMS_SPECS = [spec for spec in offered_specs(Capability.SMS) if not spec.test_only]


def _prefix(capability: Capability, name: str) -> str:
    spec = next(spec for spec in offered_specs(capability) if spec.name == name)
    return str(spec.settings_model.model_config.get("env_prefix", ""))


@contextmanager
def sms_fakes(names: list[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Each named SMS provider's fake, served, and the plugin configured for it through the environment."""
    with ExitStack() as stack:
        fakes = {name: stack.enter_context(serve_fake(SMS_HARNESSES[name].fake())) for name in names}
        for name, fake in fakes.items():
            for key, value in fake.plugin_settings().items():
                monkeypatch.setenv(f"{_prefix(Capability.SMS, name)}{key}", value)
        yield fakes


class Stack:
    """The platform a consultation runs on: the embedded default (SQLite, jobs in the API process), or
    PostgreSQL with Redis and what ``legetime worker`` runs apart from the API: dramatiq workers and the
    outbox poll (``tests.support.worker_process``)."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request, self.tmp_path = request, tmp_path
        self.name: str = request.param

    @contextmanager
    def running(self, **settings: Any) -> Iterator[TestClient]:
        base = Settings(data_dir=self.tmp_path / "data")
        if self.name == "postgres+redis":
            base = base.model_copy(
                update={
                    "database_url": self.request.getfixturevalue("fresh_postgres_url"),
                    "redis_url": self.request.getfixturevalue("redis_url"),
                    "queue_namespace": f"legetime-test-{uuid.uuid4().hex[:8]}",
                }
            )
        upgrade(base.resolved_database_url)
        seed_demo(base)
        platform = Platform.create(base.model_copy(update=settings), load_entry_points=False)
        if self.name == "embedded":
            with TestClient(create_app(platform)) as client:
                yield client
            return
        with worker_process(platform), TestClient(create_app(platform, run_jobs_in_process=False)) as client:
            yield client
        # With PostgreSQL configured every provider keeps its state in it: no state file of its own.
        assert state_files(base.data_dir) == []


def state_files(directory: Path) -> list[Path]:
    """SQLite databases anywhere under ``directory`` (whatever they are named)."""
    return [
        path
        for path in directory.rglob("*")
        if path.is_file() and path.open("rb").read(16) == b"SQLite format 3\x00"
    ]


@pytest.fixture(params=["embedded", "postgres+redis"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Stack:
    return Stack(request, tmp_path)


def _her_texts(api: Api, fake: Any, harness: SmsHarness) -> list[str]:
    return [sent for sent, to in harness.texts(fake) if to == DEMO_PEOPLE[2].phone]


def _text_notices(api: Api, clinician: str, case_id: str) -> list[dict[str, Any]]:
    query = "query($id: ID!) { case(id: $id) { textNotices { event status failureReason } } }"
    return list(api.gql(query, clinician, id=case_id)["case"]["textNotices"])


@pytest.fixture(params=[spec.name for spec in SMS_SPECS])
def sms_provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in SMS_HARNESSES:
        pytest.fail(
            f"SMS provider {name!r} has no harness: add one to SMS_HARNESSES in {__file__}", pytrace=False
        )
    return name


def test_the_consultation_texts_her_through_each_sms_provider(
    sms_provider: str, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The doctor answers; she is texted through the provider's API; its network's delivery report,
    verified, shows in the clinician's view of the case."""
    harness = SMS_HARNESSES[sms_provider]
    with (
        sms_fakes([sms_provider], monkeypatch) as fakes,
        stack.running(sms_providers=[sms_provider]) as client,
    ):
        api, fake = Api(client), fakes[sms_provider]
        mother, clinician = api.login(MOTHER), api.login(CLINICIAN)

        def texted(case_id: str) -> None:
            (sent,) = api.wait_for(lambda: _her_texts(api, fake, harness), "her text")
            headers, body = harness.report(fake, sent, True)
            assert (
                client.post(f"/webhooks/sms/{sms_provider}", headers=headers, content=body).status_code == 204
            )
            delivered = [{"event": "answered", "status": "delivered", "failureReason": None}]
            api.wait_for(lambda: _text_notices(api, clinician, case_id) == delivered, "the delivery report")

        consultation(api, mother, clinician, "fake", None, None, after_answer=texted)


def test_a_text_twilio_cannot_deliver_reaches_her_once_through_link_mobility(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failover across real providers: Twilio accepts the text, its network reports it undelivered; LINK
    Mobility sends it; exactly one text reaches her, and late or repeated reports change nothing."""
    twilio, link = SMS_HARNESSES["twilio"], SMS_HARNESSES["link-mobility"]
    order = ["twilio", "link-mobility"]
    with sms_fakes(order, monkeypatch) as fakes, stack.running(sms_providers=order) as client:
        api = Api(client)
        mother, clinician = api.login(MOTHER), api.login(CLINICIAN)

        def post(name: str, report: tuple[dict[str, str], bytes]) -> int:
            headers, body = report
            return client.post(f"/webhooks/sms/{name}", headers=headers, content=body).status_code

        def fails_over(case_id: str) -> None:
            (first,) = api.wait_for(lambda: _her_texts(api, fakes["twilio"], twilio), "Twilio's text")
            undelivered = twilio.report(fakes["twilio"], first, False)
            assert post("twilio", undelivered) == 204
            (second,) = api.wait_for(lambda: _her_texts(api, fakes["link-mobility"], link), "LINK's text")
            assert post("twilio", undelivered) == 204  # Twilio retries its callback: nothing more is sent
            assert post("link-mobility", link.report(fakes["link-mobility"], second, True)) == 204
            delivered = [{"event": "answered", "status": "delivered", "failureReason": "undelivered: 30003"}]
            notices = api.wait_for(
                lambda: (n := _text_notices(api, clinician, case_id))[0]["status"] == "delivered" and n,
                "the delivery through LINK",
            )
            assert notices[0]["failureReason"].startswith(delivered[0]["failureReason"])
            assert len(_her_texts(api, fakes["twilio"], twilio)) == 1
            assert len(_her_texts(api, fakes["link-mobility"], link)) == 1

        consultation(api, mother, clinician, "fake", None, None, after_answer=fails_over)


def test_the_consultation_with_images_on_s3(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Her image goes to the S3 bucket (encrypted by the platform, and server-side), the clinician sees
    it, and the consultation runs to its end."""
    server = shared_server()
    bucket = server.create_bucket()
    try:
        for name, value in server.environment(bucket).items():
            monkeypatch.setenv(name, value)
        with stack.running(storage_provider="s3") as client:
            api = Api(client)
            mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
            photo = jpeg_with_gps()

            def with_image(case_id: str) -> None:
                texts = api.gql("{ consentTexts { purpose version } }")["consentTexts"]
                version = next(t["version"] for t in texts if t["purpose"] == "IMAGE_STORAGE")
                consent = {"purpose": "IMAGE_STORAGE", "textVersion": version, "caseId": case_id}
                api.ok("grantConsent", consent, "consent { granted }", mother)
                uploaded = api.upload(case_id, photo, mother)
                assert uploaded["errors"] == [], uploaded["errors"]
                attached = uploaded["attachment"]
                assert server.keys(bucket) and photo not in b"".join(
                    server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
                    for key in server.keys(bucket)
                )  # what S3 holds is the platform's ciphertext
                seen = client.get(attached["url"], headers={"Authorization": f"Bearer {clinician}"})
                assert seen.status_code == 200 and seen.content[:2] == b"\xff\xd8"  # her JPEG, metadata gone

            consultation(api, mother, clinician, "fake", None, None, before_answer=with_image)
    finally:
        server.remove_bucket(bucket)


def test_the_consultation_with_the_openai_drafter(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """After answering, the clinician asks the model for a draft (minimised input), edits nothing and
    approves it; the note names the model and prompt version that drafted it."""
    with serve_fake(OpenAIChatFake()) as fake:
        for key, value in fake.plugin_settings().items():
            monkeypatch.setenv(f"{_prefix(Capability.JOURNAL, 'openai')}{key}", value)
        with stack.running(journal_provider="openai") as client:
            api = Api(client)
            mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
            me = api.gql("{ me { givenName familyName } }", mother)["me"]
            fake.forbidden_names = [me["givenName"], me["familyName"]]
            notes = (
                "query($id: ID!) { case(id: $id) { journalDraft { status error { code message } } "
                "journalNotes { id status drafter model promptVersion } } }"
            )

            def drafted(case_id: str) -> None:
                api.ok(
                    "draftJournalNote", {"caseId": case_id, "idempotencyKey": "d1"}, "case { id }", clinician
                )
                case = api.wait_for(
                    lambda: (
                        (c := api.gql(notes, clinician, id=case_id)["case"])["journalDraft"]["status"]
                        != "PENDING"
                        and c
                    ),
                    "the draft",
                )
                assert case["journalDraft"] == {"status": "DONE", "error": None}, (case, fake.violations)
                [note] = case["journalNotes"]
                assert (note["drafter"], note["model"]) == ("openai", fake.answered_by)
                approved = api.ok("approveJournalNote", {"noteId": note["id"]}, "note { status }", clinician)
                assert approved["note"]["status"] == "APPROVED"
                assert fake.requests and fake.violations == []

            consultation(api, mother, clinician, "fake", None, None, after_answer=drafted)
