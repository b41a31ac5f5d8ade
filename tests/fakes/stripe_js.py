"""What Stripe.js does in the payer's browser, against the local Stripe API (``stripe_api``): it holds only
the publishable key and the PaymentIntent's client secret, never the secret key.

* ``confirm_payment``: the Payment Element's ``stripe.confirmPayment`` (the card or wallet the payer
  picked, then 3-D Secure when her bank asks for it);
* ``handle_next_action``: ``stripe.handleNextAction`` after the server confirmed and Stripe answered
  ``requires_action``.

Each answers as Stripe.js resolves: ``{"paymentIntent": …}``, or ``{"error": …}`` (a decline, also one
after authentication, or a failed challenge).
"""

from __future__ import annotations

from typing import Any

import httpx


class StripeJs:
    def __init__(self, base_url: str, publishable_key: str) -> None:
        assert publishable_key.startswith("pk_"), "Stripe.js is given the publishable key only"
        self.base_url, self.publishable_key = base_url, publishable_key

    def retrieve(self, client_secret: str) -> dict[str, Any]:
        response = self._request(
            "GET", f"/v1/payment_intents/{_intent_id(client_secret)}", params={"client_secret": client_secret}
        )
        response.raise_for_status()
        intent: dict[str, Any] = response.json()
        return intent

    def confirm_payment(
        self, client_secret: str, payment_method: str, return_url: str, *, authenticate: bool = True
    ) -> dict[str, Any]:
        response = self._request(
            "POST",
            f"/v1/payment_intents/{_intent_id(client_secret)}/confirm",
            data={"client_secret": client_secret, "payment_method": payment_method, "return_url": return_url},
        )
        if response.status_code >= 400:
            return {"error": response.json()["error"]}
        return self._after_confirm(response.json(), client_secret, authenticate)

    def handle_next_action(self, client_secret: str, *, authenticate: bool = True) -> dict[str, Any]:
        intent = self.retrieve(client_secret)
        if intent["status"] != "requires_action":
            return {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state"}}
        return self._after_confirm(intent, client_secret, authenticate)

    def _after_confirm(
        self, intent: dict[str, Any], client_secret: str, authenticate: bool
    ) -> dict[str, Any]:
        if intent["status"] == "requires_action":  # the bank's challenge, shown by Stripe.js
            answer = {"client_secret": client_secret, "result": "passed" if authenticate else "failed"}
            response = self._request("POST", f"/3ds/{intent['id']}", data=answer)
            response.raise_for_status()
            intent = self.retrieve(client_secret)
        if intent["status"] == "requires_payment_method" and intent.get("last_payment_error"):
            return {"error": {**intent["last_payment_error"], "payment_intent": intent}}
        return {"paymentIntent": intent}

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.publishable_key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=10) as client:
            return client.request(method, path, **options)


def _intent_id(client_secret: str) -> str:
    """``pi_…_secret_…``: Stripe.js reads the PaymentIntent's id from its client secret."""
    intent_id, marker, _ = client_secret.partition("_secret_")
    assert marker and intent_id.startswith("pi_"), "not a PaymentIntent's client secret"
    return intent_id
