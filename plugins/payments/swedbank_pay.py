"""Swedbank Pay (formerly PayEx) payment orders, v3.x (payment provider ``swedbank-pay``).

Documentation followed (developer.swedbankpay.com, Online Payments / Digital Payments): "Payment order"
(``POST /psp/paymentorders`` with ``operation: Purchase``, ``urls``, ``payeeInfo``; statuses
Initialized, Paid, Failed, Cancelled, Aborted, Reversed), "After payment" (capture, cancel and reversal
through the ``operations`` of the fetched order, each with ``transaction {description, amount, vatAmount,
payeeReference}``), "payeeReference" (unique per operation; it makes each operation happen exactly
once), "Callback" (unsigned: it only says "fetch the order"), "Problems" (``application/problem+json``).

What we rely on and why:

* **URLs only from ``operations``.** The order is fetched and the ``href`` of the wanted ``rel`` is
  followed (``capture``, ``cancel``, ``reversal``, ``abort``, ``redirect-checkout``; the older
  ``create-paymentorder-*`` names too). No operation offered means the state does not allow it.
* **Exactly once through ``payeeReference``**: each capture, cancel and reversal gets a payeeReference
  derived from our idempotency key. Before an operation the order's transactions are checked for it: a
  retry after a lost answer finds the first one done (same amount) instead of doing it again, or a
  conflict (another amount). Reserve keys map to orders in the plugin's table in the platform's database
  (``swedbank_pay_reservation``; the order id is ours to remember, Swedbank Pay cannot be searched by our
  key). A key is claimed there, for ``CLAIM``, before its order is created: a retry on any process finds
  the order, or waits while another attempt is creating it.
* **Callbacks are unsigned**, so the callback URL we give carries an HMAC token of our order reference;
  a callback must carry that token and name an order whose ``orderReference`` is the one the token is
  for. Then the core re-fetches the order: nothing in the body is trusted.
* **Expiry**: a card authorization is relied on for ``authorization_days`` (7) from the order's creation
  (the authorization comes after it, so this errs on the early side).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Column, MetaData, String, Table, delete, exc, insert, select, update

from legetime.sdk import (
    Capability,
    ErrorCode,
    HttpsUrl,
    IdempotencyConflict,
    Money,
    Payment,
    PaymentAmounts,
    PaymentExpired,
    PaymentMethodKind,
    PaymentOption,
    PaymentStateError,
    PluginDatabase,
    PluginTables,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    ReserveRequest,
    UTCDateTime,
    WebhookEvent,
    derive_status,
    hookimpl,
    webhook_rejected,
)

# httpx is imported when the provider is constructed (see ``_load_sdk``), not when the plugin is loaded: a
# default plugin whose provider is not enabled costs start-up nothing.

NAME = "swedbank-pay"
ORDERS = "/psp/paymentorders"
NIL_ORDER = "00000000-0000-0000-0000-000000000000"
"""A payment order id that is never issued: ``check`` reads it to test the token."""
EXPAND = "$expand=paid,cancelled,financialtransactions"
CALLBACK_KEY_PURPOSE = "payments-swedbank-pay-callback"
CLAIM = timedelta(minutes=2)
"""How long a reserve key is held by the attempt creating its order: longer than that call can take."""
UNAVAILABLE = "Betalingstjenesten svarer ikke akkurat nå. Prøv igjen om litt."
RELS = {
    "capture": ("capture", "create-paymentorder-capture"),
    "cancel": ("cancel", "create-paymentorder-cancel"),
    "reversal": ("reversal", "create-paymentorder-reversal"),
    "abort": ("abort",),
    "pay": ("redirect-checkout", "redirect-paymentorder"),
}

metadata = MetaData()
reservations = Table(
    "swedbank_pay_reservation",
    metadata,
    Column("idempotency_key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("order_id", String(200), nullable=True),
    Column("claimed_until", UTCDateTime(), nullable=False),
)


class SwedbankPaySettings(ProviderSettings):
    """Settings of ``swedbank-pay``, from ``LEGETIME_PAYMENTS_SWEDBANK_PAY_*`` (from Swedbank Pay's
    merchant portal)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_PAYMENTS_SWEDBANK_PAY_")

    base_url: HttpsUrl = Field(
        default="https://api.externalintegration.payex.com",
        description="The API: test https://api.externalintegration.payex.com, production https://api.payex.com.",
    )
    payee_id: str = Field(description="Your payeeId (merchant id, a GUID).")
    access_token: SecretStr = Field(description="The API access token (Bearer) from the merchant portal.")
    payee_name: str = Field(default="Legetime", description="payeeName shown to the payer.")
    api_version: str = Field(
        default="3.1", description="The payment order API version (Content-Type version)."
    )
    language: str = Field(default="nb-NO", description="The payment page's language.")
    callback_url: HttpsUrl | None = Field(
        default=None,
        description="Where Swedbank Pay sends callbacks; "
        "default: the public URL + /webhooks/payments/swedbank-pay.",
    )
    authorization_days: int = Field(
        default=7, gt=0, le=30, description="How long a card authorization is relied on (from the order)."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="HTTP timeout per call.")


class SwedbankPayProvider:
    """Implements ``legetime.sdk.PaymentProvider`` with Swedbank Pay payment orders."""

    name = NAME
    payment_options = (PaymentOption(PaymentMethodKind.CARD, "Betalingskort", "card"),)

    def __init__(
        self,
        settings: SwedbankPaySettings,
        *,
        callback_url: str,
        callback_key: bytes,
        database: PluginDatabase,
        now: Any = None,
    ) -> None:
        _load_sdk()
        self.settings = settings
        self.callback_url = callback_url
        self._callback_key = callback_key
        self._db = database
        self._now = now or (lambda: datetime.now(UTC))

    # --- The protocol -----------------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Payment:
        if request.amount.amount <= 0:
            raise ProviderError("Beløpet må være større enn null.", field="amount", code=ErrorCode.INVALID)
        if not request.return_url:
            raise ProviderError(
                "Oppgi returnUrl: betalingssiden sender betaleren tilbake dit.",
                field="returnUrl",
                code=ErrorCode.REQUIRED,
            )
        if not request.idempotency_key:
            raise ProviderError("Idempotensnøkkel mangler.", field="idempotency_key", code=ErrorCode.REQUIRED)
        if request.payment_method not in (None, "card"):
            raise ProviderError(
                "Swedbank Pay tilbyr bare kort her (paymentMethod: card).",
                field="paymentMethod",
                code=ErrorCode.INVALID,
            )
        fingerprint = hashlib.sha256(
            json.dumps([request.amount.amount, request.amount.currency, request.return_url]).encode()
        ).hexdigest()
        known = await self._claim(request.idempotency_key, fingerprint)
        if known is not None:
            return await self.get(known)
        order_reference = "lt" + hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:40]
        back = urlsplit(request.return_url)
        origin = f"{back.scheme}://{back.netloc}"
        body = {
            "paymentorder": {
                "operation": "Purchase",
                "currency": request.amount.currency,
                "amount": request.amount.amount,
                "vatAmount": 0,  # health services are exempt from VAT
                "description": f"{request.description} ({request.reference})"[:40],
                "userAgent": "Legetime",
                "language": self.settings.language,
                "urls": {
                    "hostUrls": [origin],
                    "completeUrl": request.return_url,
                    "cancelUrl": request.return_url,
                    "callbackUrl": self._callback_for(order_reference),
                },
                "payeeInfo": {
                    "payeeId": self.settings.payee_id,
                    "payeeReference": secrets.token_hex(15),  # unique per operation (30 characters)
                    "payeeName": self.settings.payee_name,
                    "orderReference": order_reference,
                },
            }
        }
        try:
            created = await self._request("POST", ORDERS, body)
        except ProviderError:  # refused: no order was made, a retry may create it
            await self._unclaim(request.idempotency_key)
            raise
        # ProviderUnavailable keeps the claim: the order may exist; a retry after ``CLAIM`` creates anew.
        order_id = str(created["paymentOrder"]["id"])
        await self._remember(request.idempotency_key, order_id)
        return self._payment(created)  # the answer is the new order with its operations: no need to fetch

    async def get(self, payment_id: str) -> Payment:
        return self._payment(await self._order(payment_id))

    async def capture(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        return await self._transaction(payment_id, "capture", "Capture", amount, idempotency_key)

    async def release(self, payment_id: str, idempotency_key: str) -> Payment:
        order = await self._order(payment_id)
        po = order["paymentOrder"]
        if po.get("status") == "Initialized":  # the payer never paid: abort the order
            href = _operation(order, "abort")
            if href is not None:
                body = {"paymentorder": {"operation": "Abort", "abortReason": "CancelledByConsumer"}}
                await self._request("PATCH", href, body)
            return await self.get(payment_id)
        payment = self._payment(order)
        remaining = payment.amounts.authorized - payment.amounts.captured - payment.amounts.released
        if remaining <= 0 and payment.amounts.released:
            return payment  # already cancelled (a retry)
        return await self._transaction(
            payment_id,
            "cancel",
            "Cancellation",
            Money(remaining, payment.amount.currency),
            idempotency_key,
            order,
        )

    async def refund(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        return await self._transaction(payment_id, "reversal", "Reversal", amount, idempotency_key)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> WebhookEvent:
        query = parse_qs(urlsplit(url).query)
        reference, token = (query.get("order") or [""])[0], (query.get("token") or [""])[0]
        if not reference or not hmac.compare_digest(token, self._token(reference)):
            raise webhook_rejected("the callback URL's token is not ours")
        try:
            callback = json.loads(body)
            order_id = str(callback["paymentOrder"]["id"])
            transaction = (callback.get("transaction") or {}).get("number")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise webhook_rejected("not a payment order callback") from None
        try:
            order = await self._order(order_id)
        except PaymentStateError:
            raise webhook_rejected("no such payment order") from None
        if order["paymentOrder"].get("orderReference") != reference:
            raise webhook_rejected("the callback names another order than its URL is for")
        event_id = f"{order_id}:{transaction}" if transaction is not None else None
        return WebhookEvent(payment_id=order_id, event="callback", event_id=event_id)

    # --- Operations ---------------------------------------------------------------------------------

    async def _transaction(
        self,
        payment_id: str,
        operation: str,
        kind: str,
        amount: Money,
        idempotency_key: str,
        order: dict[str, Any] | None = None,
    ) -> Payment:
        if not idempotency_key:
            raise ProviderError("Idempotensnøkkel mangler.", field="idempotency_key", code=ErrorCode.REQUIRED)
        if amount.amount <= 0:
            raise ProviderError("Beløpet må være større enn null.", field="amount", code=ErrorCode.INVALID)
        payee_reference = _payee_reference(operation, idempotency_key)
        for attempt in (1, 2):
            order = order if order is not None and attempt == 1 else await self._order(payment_id)
            done = _done(order, payee_reference)
            if done is not None:  # a retry: it happened once already
                if done != amount.amount:
                    raise IdempotencyConflict("Idempotensnøkkelen er brukt til et annet beløp.")
                return self._payment(order)
            payment = self._payment(order)
            if amount.currency != payment.amount.currency:
                raise PaymentStateError(
                    f"Feil valuta: betalingen er i {payment.amount.currency}.", field="currency"
                )
            if operation == "capture" and payment.status.value == "expired":
                raise PaymentExpired("Reservasjonen er utløpt og kan ikke trekkes.")
            href = _operation(order, operation)
            if href is None:
                raise PaymentStateError(_NOT_NOW[operation])
            transaction = {
                "transaction": {
                    "description": {"capture": "Legetime", "cancel": "Avbrutt", "reversal": "Refusjon"}[
                        operation
                    ],
                    "amount": amount.amount,
                    "vatAmount": 0,
                    "payeeReference": payee_reference,
                }
            }
            try:
                await self._request("POST", href, transaction)
            except _Duplicate:
                continue  # done concurrently or the answer was lost: look again
            return await self.get(payment_id)
        raise PaymentStateError(f"Swedbank Pay avviste {kind.lower()} (payeeReference brukt).")

    async def _order(self, payment_id: str) -> dict[str, Any]:
        if not payment_id.startswith(f"{ORDERS}/"):
            raise PaymentStateError(f"Fant ingen betaling med id {payment_id!r}.", code=ErrorCode.NOT_FOUND)
        order = await self._request("GET", f"{payment_id}?{EXPAND}")
        if not isinstance(order.get("paymentOrder"), dict):
            raise ProviderUnavailable(UNAVAILABLE)
        return order

    def _payment(self, order: Mapping[str, Any]) -> Payment:
        po = order["paymentOrder"]
        status = str(po.get("status"))
        transactions = ((po.get("financialTransactions") or {}).get("financialTransactionsList")) or []
        authorized = int((po.get("paid") or {}).get("amount", 0)) if status != "Failed" else 0
        amounts = PaymentAmounts(
            authorized=authorized,
            captured=sum(int(t["amount"]) for t in transactions if t.get("type") == "Capture"),
            released=int((po.get("cancelled") or {}).get("amount", 0)),
            refunded=sum(int(t["amount"]) for t in transactions if t.get("type") == "Reversal"),
        )
        created = datetime.fromisoformat(str(po["created"]).replace("Z", "+00:00"))
        expires_at = created + timedelta(days=self.settings.authorization_days) if authorized else None
        remaining = amounts.authorized - amounts.captured - amounts.released
        pending = status == "Initialized"
        return Payment(
            provider=NAME,
            payment_id=str(po["id"]),
            amount=Money(int(po["amount"]), str(po["currency"])),
            amounts=amounts,
            status=derive_status(
                amounts,
                expired=expires_at is not None and remaining > 0 and self._now() >= expires_at,
                pending=pending,
            ),
            expires_at=expires_at,
            action_url=_operation(order, "pay") if pending else None,
        )

    # --- Operators ------------------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """GET a payment order that cannot exist (the nil GUID) with the access token: an authenticated read
        that creates nothing. 404 means the token was accepted (401/403: refused). The payeeId is only
        checked when an order is created, so this check cannot confirm it."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout_seconds) as client:
                response = await client.get(
                    f"{self.settings.base_url}{ORDERS}/{NIL_ORDER}", headers=self._headers()
                )
        except httpx.TimeoutException:
            return ProviderCheck(
                False, f"Swedbank Pay did not answer within {self.settings.timeout_seconds:g} s."
            )
        except httpx.HTTPError:
            return ProviderCheck(False, "Swedbank Pay is unreachable.")
        status = response.status_code
        if status in (401, 403):
            return ProviderCheck(False, f"Swedbank Pay refused the access token (HTTP {status}).")
        if status in (200, 404):
            return ProviderCheck(
                True,
                "Swedbank Pay accepted the access token (the payeeId is checked with the first payment).",
            )
        return ProviderCheck(False, f"Swedbank Pay answered HTTP {status}.")

    # --- HTTP ---------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.settings.access_token.get_secret_value()}",
            "Content-Type": f"application/json;version={self.settings.api_version}",
            "Accept": "application/problem+json; q=1.0, "
            f"application/json; q=0.9;version={self.settings.api_version}",
        }

    async def _request(self, method: str, href: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        url = href if href.startswith(("http://", "https://")) else f"{self.settings.base_url}{href}"
        try:
            async with httpx.AsyncClient(timeout=self.settings.timeout_seconds) as client:
                response = await client.request(method, url, headers=self._headers(), json=body)
        except httpx.HTTPError:
            raise ProviderUnavailable(UNAVAILABLE) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderUnavailable(UNAVAILABLE)
        try:
            data = response.json() if response.content else {}
        except ValueError:
            raise ProviderUnavailable(UNAVAILABLE) from None
        if response.status_code < 300:
            return data if isinstance(data, dict) else {}
        detail = str(data.get("detail") or data.get("title") or response.reason_phrase)
        problems = " ".join(
            str(p.get("description", "")) for p in data.get("problems", []) if isinstance(p, dict)
        )
        if response.status_code == 404:
            raise PaymentStateError(f"Fant ingen slik betaling: {detail}", code=ErrorCode.NOT_FOUND)
        if response.status_code == 409 and "payeeReference" in f"{detail} {problems}":
            raise _Duplicate
        if response.status_code in (401, 403):
            raise ProviderError(f"Swedbank Pay avviste tilgangen (sjekk payeeId og token): {detail}")
        raise PaymentStateError(f"Swedbank Pay avviste forespørselen: {detail} {problems}".strip())

    # --- Callback token and the local reserve map ---------------------------------------------------

    def _token(self, order_reference: str) -> str:
        return hmac.new(self._callback_key, order_reference.encode(), hashlib.sha256).hexdigest()[:32]

    def _callback_for(self, order_reference: str) -> str:
        query = urlencode({"order": order_reference, "token": self._token(order_reference)})
        return f"{self.callback_url}?{query}"

    async def _claim(self, key: str, fingerprint: str) -> str | None:
        """The order this key made; None when this attempt now holds the key to create it."""
        now = self._now()
        try:
            async with self._db.transaction() as session:
                row = (
                    await session.execute(
                        select(reservations).where(reservations.c.idempotency_key == key).with_for_update()
                    )
                ).first()
                if row is None:
                    claim = {"idempotency_key": key, "fingerprint": fingerprint, "claimed_until": now + CLAIM}
                    await session.execute(insert(reservations).values(claim))
                    return None
                if row.fingerprint != fingerprint:
                    raise IdempotencyConflict("Idempotensnøkkelen er brukt til en annen reservasjon.")
                if row.order_id is not None:
                    return str(row.order_id)
                if row.claimed_until > now:  # another attempt is creating the order right now
                    raise ProviderUnavailable(UNAVAILABLE)
                await session.execute(
                    update(reservations)
                    .where(reservations.c.idempotency_key == key)
                    .values(claimed_until=now + CLAIM)
                )
                return None
        except exc.IntegrityError:  # a concurrent first attempt inserted the key
            raise ProviderUnavailable(UNAVAILABLE) from None
        except exc.OperationalError as error:
            raise ProviderUnavailable(UNAVAILABLE) from error

    async def _remember(self, key: str, order_id: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(reservations).where(reservations.c.idempotency_key == key).values(order_id=order_id)
            )

    async def _unclaim(self, key: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                delete(reservations).where(
                    reservations.c.idempotency_key == key, reservations.c.order_id.is_(None)
                )
            )


class _Duplicate(Exception):
    """Swedbank Pay refused an operation because its payeeReference was used already."""


_NOT_NOW = {
    "capture": "Betalingen kan ikke trekkes nå (ikke godkjent, allerede trukket eller kansellert).",
    "cancel": "Reservasjonen kan ikke kanselleres nå.",
    "reversal": "Betalingen kan ikke refunderes (ingenting er trukket).",
}


def _operation(order: Mapping[str, Any], what: str) -> str | None:
    """The ``href`` of the operation the order offers for ``what``; None if the state does not allow it."""
    for operation in order.get("operations") or []:
        if operation.get("rel") in RELS[what]:
            return str(operation["href"])
    return None


def _done(order: Mapping[str, Any], payee_reference: str) -> int | None:
    """The amount of an earlier transaction with this payeeReference, if there is one."""
    po = order["paymentOrder"]
    transactions = list(((po.get("financialTransactions") or {}).get("financialTransactionsList")) or [])
    if po.get("cancelled"):
        transactions.append(po["cancelled"])
    for transaction in transactions:
        if transaction.get("payeeReference") == payee_reference:
            return int(transaction["amount"])
    return None


def _payee_reference(operation: str, idempotency_key: str) -> str:
    """Unique per operation, the same for a retry: 30 characters of [a-z0-9]."""
    return operation[:2] + hashlib.sha256(f"{operation}:{idempotency_key}".encode()).hexdigest()[:28]


def _load_sdk() -> None:
    """Import the HTTP client with the provider, so that its first payment does not wait for it."""
    importlib.import_module("httpx")


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(settings: SwedbankPaySettings, context: ProviderContext) -> SwedbankPayProvider:
    return SwedbankPayProvider(
        settings,
        callback_url=settings.callback_url
        or f"{context.settings.public_url.rstrip('/')}/webhooks/payments/{NAME}",
        callback_key=context.derive_key(CALLBACK_KEY_PURPOSE),
        database=context.database,
    )


@hookimpl
def register_tables() -> PluginTables:
    return PluginTables("swedbank_pay", metadata, Path(__file__).parent / "migrations" / "swedbank_pay")


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.PAYMENT,
            name=NAME,
            factory=create_provider,
            settings_model=SwedbankPaySettings,
            description="Swedbank Pay payment orders (card on Swedbank Pay's page).",
        )
    ]


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {"description": "Swedbank Pay payment orders: authorize, capture, cancel, reversal."}
