"""Card payments a frontend can complete: submitCase (and confirmPayment) answer how the payer approves a
payment that waits for her — a page to go to (``PaymentRedirect``), or Stripe's client secret with the
publishable key (``PaymentClientSecret``) for Stripe.js. The test plays the frontend against the local
Stripe API: it takes the client secret, confirms as Stripe.js would, and the case is submitted once
Stripe says the money is reserved (its verified webhook, or confirmPayment). The secret is never stored
or logged, and only the case's patient gets it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api
from tests.conftest import seed_demo
from tests.fakes.server import serve_fake
from tests.fakes.stripe_api import THREE_DS, THREE_DS2, THREE_DS_THEN_DECLINED, VISA, StripeFake
from tests.fakes.stripe_js import StripeJs
from tests.migrated import upgrade
from tests.test_payment_lifecycle import ready_case

MOTHER, CLINICIAN, OPERATOR = (DEMO_PEOPLE[i].national_id for i in (2, 0, 1))
RETURN_URL = "https://legetime.example/betaling/ferdig"
STEP = (
    "case { id status payment { provider status authorized actionUrl } } "
    "paymentAction { __typename ... on PaymentRedirect { url } "
    "... on PaymentClientSecret { provider clientSecret publishableKey } }"
)
CLIENT_SECRET = re.compile(r"^pi_[0-9a-f]+_secret_[0-9a-f]+$")


@pytest.fixture
def stripe() -> Iterator[StripeFake]:
    with serve_fake(StripeFake()) as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, stripe: StripeFake, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in stripe.plugin_settings().items():  # as an integrator configures the plugin
        monkeypatch.setenv(f"LEGETIME_PAYMENTS_STRIPE_{name}", value)
    settings = Settings(data_dir=tmp_path / "data", payment_providers=["stripe", "fake"])
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    return settings


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    platform = Platform.create(settings, load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        yield Api(client)


@pytest.fixture
def browser(stripe: StripeFake) -> StripeJs:
    return StripeJs(stripe.base_url, stripe.publishable_key)


def submit(api: Api, token: str, case_id: str, method: str | None, key: str = "k1", **more: Any) -> Any:
    fields = {"caseId": case_id, "idempotencyKey": key, "paymentProvider": "stripe", "paymentMethod": method}
    return api.mutate("submitCase", {**fields, "returnUrl": RETURN_URL, **more}, STEP, token)


def queue(api: Api) -> list[str]:
    edges = api.gql("{ caseQueue(first: 20) { edges { node { id } } } }", api.login(CLINICIAN))
    return [edge["node"]["id"] for edge in edges["caseQueue"]["edges"]]


def status_of(api: Api, token: str, case_id: str) -> str:
    query = "query($id: ID!) { case(id: $id) { status } }"
    return str(api.gql(query, token, id=case_id)["case"]["status"])


def client_secret_of(step: dict[str, Any], stripe: StripeFake) -> str:
    action = step["paymentAction"]
    assert action["__typename"] == "PaymentClientSecret", action
    assert action["provider"] == "stripe" and action["publishableKey"] == stripe.publishable_key
    assert CLIENT_SECRET.match(action["clientSecret"]), action["clientSecret"]
    return str(action["clientSecret"])


def stored_anywhere(settings: Settings, secret: str) -> bool:
    """Whether the secret is in any file of the platform's data directory (its SQLite database, WAL …)."""
    files = [path for path in settings.data_dir.rglob("*") if path.is_file()]
    assert files, "the embedded database lives in the data directory"
    return any(secret.encode() in path.read_bytes() for path in files)


def test_the_payment_element_confirms_in_the_browser_and_the_webhook_submits(
    api: Api,
    stripe: StripeFake,
    browser: StripeJs,
    settings: Settings,
    capfd: pytest.CaptureFixture[str],
) -> None:
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    step = submit(api, mother, case_id, None, returnUrl=None)  # no card yet: the Payment Element takes it
    assert step["errors"] == []
    assert step["case"]["status"] == "DRAFT" and step["case"]["payment"]["status"] == "pending"
    secret = client_secret_of(step, stripe)
    assert case_id not in queue(api)  # not before the money is reserved
    again = submit(api, mother, case_id, None, key="k2")  # a retry while it waits: the same intent
    assert client_secret_of(again, stripe) == secret and len(stripe.intents) == 1

    result = browser.confirm_payment(secret, THREE_DS2, RETURN_URL)  # 3-D Secure 2, passed
    assert result["paymentIntent"]["status"] == "requires_capture", result
    assert status_of(api, mother, case_id) == "DRAFT"  # until the platform hears it from Stripe

    intent_id = secret.split("_secret_")[0]
    headers, body = stripe.webhook(intent_id, "payment_intent.amount_capturable_updated")
    assert api.client.post("/webhooks/payments/stripe", content=body, headers=headers).status_code == 204
    api.wait_for(lambda: status_of(api, mother, case_id) == "SUBMITTED", "the webhook's refresh")
    confirmed = api.ok("confirmPayment", {"caseId": case_id}, STEP, mother)
    assert confirmed["case"]["payment"]["authorized"] == 35000 and confirmed["paymentAction"] is None
    assert case_id in queue(api)

    assert not stored_anywhere(settings, secret)
    captured = capfd.readouterr()
    assert secret not in captured.out and secret not in captured.err


@pytest.mark.parametrize("card", [THREE_DS, THREE_DS2])
def test_three_d_secure_after_the_server_confirmed_is_handed_to_stripe_js(
    api: Api, stripe: StripeFake, browser: StripeJs, card: str
) -> None:
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    step = submit(api, mother, case_id, card)
    assert step["errors"] == [], step["errors"]  # requires_action is an answer, not an error
    assert step["case"]["status"] == "DRAFT" and step["case"]["payment"]["status"] == "pending"
    secret = client_secret_of(step, stripe)

    early = api.ok("confirmPayment", {"caseId": case_id}, STEP, mother)  # back too soon: still waiting
    assert early["case"]["status"] == "DRAFT" and client_secret_of(early, stripe) == secret

    result = browser.handle_next_action(secret)
    assert result["paymentIntent"]["status"] == "requires_capture", result
    confirmed = api.ok("confirmPayment", {"caseId": case_id}, STEP, mother)
    assert confirmed["case"]["status"] == "SUBMITTED" and confirmed["paymentAction"] is None
    assert confirmed["case"]["payment"]["status"] == "authorized"


def test_a_card_declined_after_authentication_leaves_the_case_a_draft(
    api: Api, stripe: StripeFake, browser: StripeJs
) -> None:
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    secret = client_secret_of(submit(api, mother, case_id, THREE_DS_THEN_DECLINED), stripe)
    result = browser.handle_next_action(secret)  # she passes 3-D Secure; then her bank declines
    assert result["error"]["decline_code"] == "insufficient_funds", result

    declined = api.mutate("confirmPayment", {"caseId": case_id}, STEP, mother)
    assert [error["code"] for error in declined["errors"]] == ["PAYMENT_DECLINED"]
    assert declined["case"]["status"] == "DRAFT" and declined["paymentAction"] is None
    assert declined["case"]["payment"]["status"] == "declined"  # recorded, not rolled back
    assert case_id not in queue(api)
    retried = submit(api, mother, case_id, THREE_DS_THEN_DECLINED)  # the same key: the same answer
    assert [error["code"] for error in retried["errors"]] == ["PAYMENT_DECLINED"]

    other_card = submit(api, mother, case_id, VISA, key="k2")  # a new key: a new PaymentIntent
    assert other_card["errors"] == [] and other_card["case"]["status"] == "SUBMITTED"
    assert len(stripe.intents) == 2


def test_a_failed_challenge_is_a_decline_too(api: Api, stripe: StripeFake, browser: StripeJs) -> None:
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    secret = client_secret_of(submit(api, mother, case_id, THREE_DS), stripe)
    result = browser.handle_next_action(secret, authenticate=False)
    assert result["error"]["code"] == "payment_intent_authentication_failure", result
    declined = api.mutate("confirmPayment", {"caseId": case_id}, STEP, mother)
    assert [error["code"] for error in declined["errors"]] == ["PAYMENT_DECLINED"]
    assert declined["case"]["status"] == "DRAFT"


def test_a_card_without_authentication_submits_at_once(api: Api, stripe: StripeFake) -> None:
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    step = submit(api, mother, case_id, VISA)
    assert step["errors"] == [] and step["paymentAction"] is None
    assert step["case"]["status"] == "SUBMITTED" and step["case"]["payment"]["authorized"] == 35000


def test_only_the_cases_patient_gets_the_client_secret(api: Api, stripe: StripeFake) -> None:
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    secret = client_secret_of(submit(api, mother, case_id, THREE_DS), stripe)
    for who in (CLINICIAN, OPERATOR):
        token = api.login(who)
        for name, payload in (
            ("confirmPayment", api.mutate("confirmPayment", {"caseId": case_id}, STEP, token)),
            ("submitCase", submit(api, token, case_id, THREE_DS)),
        ):
            assert payload["paymentAction"] is None and payload["case"] is None, name
            assert [error["code"] for error in payload["errors"]] == ["NOT_FOUND"], name
            assert secret not in str(payload)
    # What anyone may read of the case's payment never holds it.
    query = "query($id: ID!) { case(id: $id) { payment { status actionUrl } } }"
    assert secret not in str(api.gql(query, mother, id=case_id))


def test_the_fake_psp_hands_off_a_redirect_that_approves_on_post_only(api: Api) -> None:
    mother = api.login(MOTHER)
    case_id = ready_case(api, mother)
    fields = {
        "caseId": case_id,
        "idempotencyKey": "k1",
        "paymentProvider": "fake",
        "paymentMethod": "card_3ds",
    }
    step = api.ok("submitCase", fields, STEP, mother)
    action = step["paymentAction"]
    assert action == {"__typename": "PaymentRedirect", "url": step["case"]["payment"]["actionUrl"]}

    page = api.client.get(action["url"])  # a link prefetcher, or she opens the page
    assert page.status_code == 200 and '<form method="post">' in page.text
    still = api.ok("confirmPayment", {"caseId": case_id}, STEP, mother)
    assert still["case"]["status"] == "DRAFT" and still["paymentAction"] == action  # a GET approved nothing

    assert api.client.post(action["url"]).status_code == 200  # she presses the button
    confirmed = api.ok("confirmPayment", {"caseId": case_id}, STEP, mother)
    assert confirmed["case"]["status"] == "SUBMITTED" and confirmed["paymentAction"] is None
