"""The consultation with each payment provider, against its local fake over HTTP: submit → the payer
approves (3-D Secure, the provider's own page or app) → confirmPayment → answer → close → captured once.

A provider is added here with a harness: how to point the plugin at its fake (settings through the
environment, as an integrator configures it) and how the payer approves. A payment provider the plugins
offer without a harness fails the suite, like a provider without a contract driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.db.migrate import upgrade
from legetime.core.platform.providers import Capability
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api, complete_answers
from tests.conftest import seed_demo
from tests.fakes.openid_provider import OpenIdProviderFake, Person
from tests.fakes.server import ProviderFake, serve, serve_fake
from tests.fakes.stripe_api import THREE_DS, StripeFake
from tests.fakes.swedbank_pay import SwedbankPayFake
from tests.fakes.vipps import VippsFake
from tests.support import offered_specs

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
) -> None:
    """Open, answer, consent, submit (reserve; the payer approves if the provider asks), answer, close, and
    the fee is captured exactly once."""
    case_id = api.ok("startCase", {}, "case { id }", mother)["case"]["id"]
    answers = complete_answers(api, for_child=False)
    api.ok("answerQuestionnaire", {"caseId": case_id, "answers": answers}, "case { id }", mother)
    version = api.gql("{ consentTexts { purpose version } }")["consentTexts"][0]["version"]
    consent = {"purpose": "COMMUNICATION_STORAGE", "textVersion": version}
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
    answer = {"caseId": case_id, "body": "Hvile og væske.", "outcome": "ADVICE"}
    api.ok("answerCase", answer, "case { id }", clinician)
    api.ok("closeCase", {"caseId": case_id}, "case { status }", mother)
    query = "query($id: ID!) { case(id: $id) { payment { status captured } } }"
    captured = api.wait_for(
        lambda: (p := api.gql(query, mother, id=case_id)["case"]["payment"])["status"] == "captured" and p,
        "the capture",
    )
    assert captured["captured"] == 35000
