"""Stripe PaymentIntents with manual capture (payment provider ``stripe``), through Stripe's own SDK.

Documentation followed (docs.stripe.com): "Place a hold on a payment method" (``capture_method=manual``,
``capture_before`` on the charge, partial capture releases the rest, uncaptured PaymentIntents are
cancelled automatically when the hold lapses), the PaymentIntents, Charges and Refunds API reference,
"Idempotent requests" (the same key with the same parameters returns the saved result, with other
parameters an ``idempotency_error``; card declines are saved too), "Error codes" and "Check the webhook
signatures" (``Stripe-Signature: t=…,v1=…``, HMAC-SHA256 over ``"{t}.{payload}"``, a tolerance against
replays) — the last done by the SDK's ``WebhookSignature.verify_header``.

The frontend runs Stripe.js, in one of two ways ("Accept a payment", "Finalize payments on the server"):

* **Payment Element** (no ``paymentMethod`` to ``submitCase``): ``reserve`` creates the PaymentIntent
  unconfirmed, and the payment is PENDING with a ``CLIENT_SECRET`` action: the intent's client secret and
  the publishable key. The payer's browser confirms with ``stripe.confirmPayment`` (cards, wallets,
  3-D Secure).
* **A PaymentMethod** (``pm_…``, from Elements) as ``paymentMethod``: ``reserve`` creates and confirms the
  PaymentIntent. ``requires_capture`` is an authorization; ``requires_action`` (3-D Secure) is PENDING with
  the same ``CLIENT_SECRET`` action, for ``stripe.handleNextAction`` (and Stripe's redirect URL as
  ``action_url`` when a ``return_url`` was given); a decline raises ``PaymentDeclined``.

Either way the money is reserved when the PaymentIntent is ``requires_capture``: the platform learns it
through a webhook, ``confirmPayment`` or reconciliation, all of which re-fetch it. A decline after
authentication (``requires_payment_method`` with a ``last_payment_error``) is DECLINED. The client secret
is read from the PaymentIntent whenever it is needed, never stored, and hidden from ``repr``.

Amounts come from the charge (``amount``, ``amount_captured``, ``amount_refunded``) and the
PaymentIntent's status, through ``derive_status``: the status label alone is never trusted.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    Capability,
    ErrorCode,
    IdempotencyConflict,
    Money,
    Payment,
    PaymentAction,
    PaymentActionKind,
    PaymentAmounts,
    PaymentDeclined,
    PaymentExpired,
    PaymentMethodKind,
    PaymentOption,
    PaymentStateError,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    ReserveRequest,
    WebhookEvent,
    derive_status,
    hookimpl,
    webhook_rejected,
)

# Stripe's SDK (and requests, urllib3 … behind it) is imported when the provider is constructed (see
# ``_load_sdk``), not when the plugin is loaded: a default plugin whose provider is not enabled costs
# start-up nothing.
if TYPE_CHECKING:
    import stripe
    from stripe.params import PaymentIntentCaptureParams, PaymentIntentCreateParams, RefundCreateParams

NAME = "stripe"
UNAVAILABLE = "Kortbetalingen svarer ikke akkurat nå. Prøv igjen om litt."
DECLINED = "Kortet ble avvist. Prøv et annet kort."
PENDING_STATES = ("requires_payment_method", "requires_action", "requires_confirmation", "processing")
DEFAULT_HOLD = timedelta(days=7)  # Stripe's default for online card payments when capture_before is absent


class StripeSettings(ProviderSettings):
    """Settings of ``stripe``, from ``LEGETIME_PAYMENTS_STRIPE_*`` (the keys are in Stripe's dashboard)."""

    # A secret key pasted into the wrong variable must not be echoed by the error that refuses it.
    model_config = SettingsConfigDict(env_prefix="LEGETIME_PAYMENTS_STRIPE_", hide_input_in_errors=True)

    secret_key: SecretStr = Field(
        description="A secret or restricted key (sk_… / rk_…). A restricted key needs write access to "
        "PaymentIntents and Refunds only."
    )
    publishable_key: str | None = Field(
        default=None,
        description="The publishable key (pk_test_… / pk_live_…; not a secret), of the same mode as the "
        "secret key. Given to the payer's browser with a PaymentIntent's client secret, so that Stripe.js "
        "confirms there (the Payment Element, 3-D Secure, wallets). Without it a card (pm_…) is required "
        "and 3-D Secure goes through Stripe's redirect page.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The webhook endpoint's signing secret (whsec_…). Without it webhooks are refused; "
        "reconciliation still finds every change.",
    )
    webhook_tolerance_seconds: int = Field(
        default=300, gt=0, le=3600, description="How old a webhook's signed timestamp may be."
    )
    api_base: str = Field(default="https://api.stripe.com", description="The API (changed only for tests).")
    max_network_retries: int = Field(
        default=2,
        ge=0,
        le=5,
        description="The SDK's retries of a failed call (with the same idempotency key).",
    )
    timeout_seconds: float = Field(default=20.0, gt=0, le=80, description="HTTP timeout per call.")

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("sk_", "rk_")):
            raise ValueError("must be a secret (sk_…) or restricted (rk_…) key, not a publishable key")
        return value

    @field_validator("publishable_key")
    @classmethod
    def _publishable_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A field validator, so that the secret key is compared but never part of the error."""
        if value is None:
            return value
        if not value.startswith(("pk_test_", "pk_live_")):
            raise ValueError("must be a publishable key (pk_test_… or pk_live_…)")
        secret = info.data.get("secret_key")
        if isinstance(secret, SecretStr) and _mode(secret.get_secret_value()) != _mode(value):
            raise ValueError("must be of the secret key's mode: both test keys (…_test_…) or both live keys")
        return value


def _mode(key: str) -> str | None:
    """``test`` or ``live``, from a key's prefix (``sk_test_…``, ``rk_live_…``, ``pk_test_…``)."""
    for mode in ("test", "live"):
        if key[2:].startswith(f"_{mode}_"):
            return mode
    return None


class StripeProvider:
    """Implements ``legetime.sdk.PaymentProvider`` with PaymentIntents and manual capture."""

    name = NAME
    payment_options = (PaymentOption(PaymentMethodKind.CARD, "Betalingskort"),)

    def __init__(self, settings: StripeSettings, *, now: Any = None) -> None:
        _load_sdk()
        self.settings = settings
        self._now = now or (lambda: datetime.now(UTC))

    # --- The protocol -----------------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Payment:
        if not request.payment_method and self.settings.publishable_key is None:
            raise ProviderError(
                "Oppgi kortet (en PaymentMethod fra Stripe Elements).",
                field="paymentMethod",
                code=ErrorCode.REQUIRED,
            )
        params: PaymentIntentCreateParams = {
            "amount": request.amount.amount,
            "currency": request.amount.currency.lower(),
            "capture_method": "manual",
            "description": f"{request.description} ({request.reference})",
            "metadata": {"reference": request.reference},
            "expand": ["latest_charge"],
        }
        if not request.payment_method:  # the Payment Element confirms it in the payer's browser
            params["automatic_payment_methods"] = {"enabled": True}
        else:
            params |= {"confirm": True, "payment_method": request.payment_method}
            if request.return_url:
                params["return_url"] = request.return_url
            else:  # Stripe refuses to confirm without a return_url unless redirects are off
                params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
        async with self._client() as client:
            intent = await _call(
                client.v1.payment_intents.create_async(params, {"idempotency_key": request.idempotency_key})
            )
        return self._payment(intent)

    async def get(self, payment_id: str) -> Payment:
        return self._payment(await self._retrieve(payment_id))

    async def capture(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        current = await self.get(payment_id)
        if current.status.value == "expired":
            raise PaymentExpired("Reservasjonen er utløpt og kan ikke trekkes.")
        if amount.currency != current.amount.currency:
            raise PaymentStateError(
                f"Feil valuta: betalingen er i {current.amount.currency}.", field="currency"
            )
        params: PaymentIntentCaptureParams = {"amount_to_capture": amount.amount, "expand": ["latest_charge"]}
        async with self._client() as client:
            intent = await _call(
                client.v1.payment_intents.capture_async(
                    payment_id, params, {"idempotency_key": idempotency_key}
                )
            )
        return self._payment(intent)

    async def release(self, payment_id: str, idempotency_key: str) -> Payment:
        async with self._client() as client:
            intent = await _call(
                client.v1.payment_intents.cancel_async(
                    payment_id, {"expand": ["latest_charge"]}, {"idempotency_key": idempotency_key}
                )
            )
        return self._payment(intent)

    async def refund(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        current = await self.get(payment_id)
        if amount.amount > current.amounts.captured - current.amounts.refunded:
            # Stripe would "refund" an uncaptured hold by cancelling it: not what a refund means here.
            raise PaymentStateError("Kan ikke refundere mer enn det som er trukket.", field="amount")
        params: RefundCreateParams = {"payment_intent": payment_id, "amount": amount.amount}
        async with self._client() as client:
            await _call(client.v1.refunds.create_async(params, {"idempotency_key": idempotency_key}))
        return await self.get(payment_id)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> WebhookEvent:
        if self.settings.webhook_secret is None:
            raise webhook_rejected(
                "no webhook secret is configured (LEGETIME_PAYMENTS_STRIPE_WEBHOOK_SECRET)"
            )
        import stripe

        signature = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
        try:
            event = stripe.Webhook.construct_event(
                body.decode(),
                signature or "",
                self.settings.webhook_secret.get_secret_value(),
                tolerance=self.settings.webhook_tolerance_seconds,
            )
        except stripe.SignatureVerificationError as exc:
            raise webhook_rejected(str(exc.user_message or "bad signature")) from None
        except ValueError:
            raise webhook_rejected("not JSON") from None
        event = _plain(event)
        data = event.get("data", {}).get("object", {})
        kind = data.get("object")
        payment_id = data.get("id") if kind == "payment_intent" else data.get("payment_intent")
        if not payment_id:
            raise webhook_rejected(f"event {event.get('type')!r} names no PaymentIntent")
        return WebhookEvent(
            payment_id=str(payment_id), event=str(event.get("type", "changed")), event_id=event.get("id")
        )

    async def check(self) -> ProviderCheck:
        """List one PaymentIntent (``GET /v1/payment_intents?limit=1``) with the secret key: read-only.

        Not the Balance: a restricted key needs only PaymentIntents and Refunds (write, which includes
        read), and may not read the balance. Listing PaymentIntents asks for exactly what payments need.
        """
        import stripe

        mode = _mode(self.settings.secret_key.get_secret_value()) or "unknown"
        try:
            async with self._client() as client:
                await client.v1.payment_intents.list_async({"limit": 1})
        except stripe.AuthenticationError as exc:
            return ProviderCheck(False, f"Stripe refused the secret key (HTTP {exc.http_status}).")
        except stripe.PermissionError as exc:
            return ProviderCheck(
                False, f"Stripe accepted the key, but it may not use PaymentIntents (HTTP {exc.http_status})."
            )
        except stripe.APIConnectionError:
            return ProviderCheck(False, "Stripe is unreachable.")
        except stripe.StripeError as exc:
            return ProviderCheck(False, f"Stripe answered HTTP {exc.http_status}.")
        return ProviderCheck(True, f"Stripe accepted the secret key ({mode} mode).")

    # --- Internals ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[stripe.StripeClient]:
        import stripe

        # One HTTP client per call: the platform calls from several event loops (API and worker threads).
        http_client = stripe.HTTPXClient(timeout=self.settings.timeout_seconds)
        try:
            yield stripe.StripeClient(
                self.settings.secret_key.get_secret_value(),
                base_addresses={"api": self.settings.api_base},
                http_client=http_client,
                max_network_retries=self.settings.max_network_retries,
            )
        finally:
            await http_client.close_async()

    async def _retrieve(self, payment_id: str) -> Any:
        async with self._client() as client:
            return await _call(
                client.v1.payment_intents.retrieve_async(payment_id, {"expand": ["latest_charge"]})
            )

    def _payment(self, intent: Any) -> Payment:
        charge = intent.get("latest_charge") if isinstance(intent.get("latest_charge"), Mapping) else None
        status = str(intent.get("status"))
        authorized = int(charge["amount"]) if charge and charge.get("status") == "succeeded" else 0
        captured = int(charge.get("amount_captured", 0)) if charge else 0
        refunded = int(charge.get("amount_refunded", 0)) if charge else 0
        lapsed = status == "canceled" and intent.get("cancellation_reason") == "automatic" and not captured
        settled = (charge is not None and bool(charge.get("captured"))) or (
            status == "canceled" and not lapsed
        )
        released = authorized - captured if settled else 0  # a partial capture releases the rest
        expires_at = self._hold_until(intent, charge) if authorized else None
        expired = lapsed or (
            expires_at is not None and not settled and authorized > captured and self._now() >= expires_at
        )
        amounts = PaymentAmounts(
            authorized=authorized, captured=captured, released=released, refunded=refunded
        )
        # Back to requires_payment_method with an error: declined (also after 3-D Secure), or the payer
        # failed the challenge. Without one, the intent waits for the Payment Element.
        declined = status == "requires_payment_method" and bool(intent.get("last_payment_error"))
        pending = status in PENDING_STATES and not declined
        redirect = (intent.get("next_action") or {}).get("redirect_to_url") or {}
        action_url = str(redirect["url"]) if pending and redirect.get("url") else None
        return Payment(
            provider=NAME,
            payment_id=str(intent["id"]),
            amount=Money(int(intent["amount"]), str(intent["currency"]).upper()),
            amounts=amounts,
            status=derive_status(amounts, declined=declined, expired=expired, pending=pending),
            expires_at=expires_at,
            action_url=action_url,
            action=self._client_action(intent, action_url) if pending else None,
        )

    def _client_action(self, intent: Mapping[str, Any], url: str | None) -> PaymentAction | None:
        """The client secret and the publishable key, for Stripe.js in the payer's browser."""
        secret = intent.get("client_secret")
        if not secret or self.settings.publishable_key is None:
            return None
        return PaymentAction(
            PaymentActionKind.CLIENT_SECRET,
            url=url,
            client_secret=str(secret),
            publishable_key=self.settings.publishable_key,
        )

    def _hold_until(self, intent: Any, charge: Mapping[str, Any] | None) -> datetime:
        card = ((charge or {}).get("payment_method_details") or {}).get("card") or {}
        if card.get("capture_before"):
            return datetime.fromtimestamp(int(card["capture_before"]), UTC)
        return datetime.fromtimestamp(int(intent["created"]), UTC) + DEFAULT_HOLD


async def _call(call: Any) -> Any:
    """Await an SDK call and turn Stripe's errors into the platform's typed errors."""
    import stripe

    try:
        return _plain(await call)
    except stripe.CardError as exc:
        declined = PaymentDeclined(DECLINED)
        intent = _plain(getattr(exc.error, "payment_intent", None) or {})
        declined.payment_id = intent.get("id")  # type: ignore[attr-defined]
        raise declined from None
    except stripe.IdempotencyError:
        raise IdempotencyConflict("Idempotensnøkkelen er brukt til en annen forespørsel.") from None
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing":
            raise PaymentStateError(
                "Fant ingen slik betaling hos Stripe.", code=ErrorCode.NOT_FOUND
            ) from None
        if exc.code == "charge_expired_for_capture":
            raise PaymentExpired("Reservasjonen er utløpt og kan ikke trekkes.") from None
        raise PaymentStateError(f"Stripe avviste endringen: {exc.user_message or exc.code}") from None
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise ProviderError(f"Stripe avviste nøkkelen: {exc.user_message}") from None
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError):
        raise ProviderUnavailable(UNAVAILABLE) from None
    except stripe.StripeError as exc:
        raise ProviderError(f"Stripe: {exc.user_message}") from None


def _plain(value: Any) -> Any:
    """The SDK's objects as plain dicts (they no longer behave as dicts themselves)."""
    import stripe

    return value.to_dict() if isinstance(value, stripe.StripeObject) else value


def _load_sdk() -> None:
    """Import Stripe's SDK with the provider, so that its first payment does not wait for it."""
    importlib.import_module("stripe")


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(settings: StripeSettings, context: ProviderContext) -> StripeProvider:
    return StripeProvider(settings)


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.PAYMENT,
            name=NAME,
            factory=create_provider,
            settings_model=StripeSettings,
            description="Stripe PaymentIntents with manual capture (cards, 3-D Secure).",
        )
    ]


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {"description": "Stripe card payments: hold on reserve, capture on close, cancel, refund."}
