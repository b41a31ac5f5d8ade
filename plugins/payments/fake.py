"""Fake card payments with a realistic state machine (development and tests).

Code written against this provider must also work against Stripe (manual capture), Vipps ePayment and
Swedbank Pay, so the fake keeps what those keep and a naive in-memory fake would not:

* **State outside process memory.** Payments live in the plugin's tables in the platform's database
  (``fake_psp_payment``, ``fake_psp_idempotency_key``): every API and worker process sees the same
  payments. A change locks the payment's row (``FOR UPDATE``; SQLite has one writer at a time) and the
  database checks the money invariants, so two processes capturing at once cannot over-capture.
* **Idempotency on every modifying call.** The same key with the same request returns the stored first
  result without a second effect; the same key with another request raises ``IdempotencyConflict``. Keys
  are global (as at Stripe): a reserve key reused for a capture is a conflict. Only outcomes that the PSP
  "executed" are stored — a success or a card decline. A refused request (``PaymentStateError``,
  ``PaymentExpired``, invalid input, PSP down) stores nothing, so it is evaluated again when retried.
* **Status from amounts.** authorized/captured/released/refunded are stored; the status is always
  ``legetime.sdk.derive_status`` of them, never a stored label.
* **Authorizations expire** (after ``authorization_ttl_hours``); capture or release after that raises
  ``PaymentExpired``.
* **Signed webhooks**, Stripe style: ``Fake-Signature: t=<unix>,v1=<hex>`` with HMAC-SHA256 over
  ``"<t>." + body``; ``webhook_for`` makes one, ``parse_webhook`` verifies it.

Test cards (``ReserveRequest.payment_method``):

=====================  ===========================================================================
``None``/``card_ok``   authorized at once
``card_declined``      raises ``PaymentDeclined``; the attempt is recorded (``get`` says DECLINED)
``card_expiring``      authorized, but the authorization has already lapsed (status EXPIRED)
``card_3ds``           PENDING with an ``action_url`` until the payer approves (``approve``, or POST)
``card_unavailable``   raises ``ProviderUnavailable`` (the PSP is down); nothing is stored
=====================  ===========================================================================
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    exc,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from legetime.sdk import (
    Capability,
    ErrorCode,
    IdempotencyConflict,
    Money,
    Payment,
    PaymentAmounts,
    PaymentDeclined,
    PaymentExpired,
    PaymentMethodKind,
    PaymentOption,
    PaymentStateError,
    PaymentStatus,
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

T = TypeVar("T")

NAME = "fake"
WEBHOOK_KEY_PURPOSE = "payments-fake-webhook"
SIGNATURE_HEADER = "Fake-Signature"
APPROVE_PATH = "/plugins/payments-fake/approve/{payment_id}"

CARD_OK = "card_ok"
CARD_DECLINED = "card_declined"
CARD_EXPIRING = "card_expiring"
CARD_3DS = "card_3ds"
CARD_UNAVAILABLE = "card_unavailable"
TEST_CARDS = (CARD_OK, CARD_DECLINED, CARD_EXPIRING, CARD_3DS, CARD_UNAVAILABLE)

DECLINED_MESSAGE = "Kortet ble avvist. Prøv et annet kort."
UNAVAILABLE_MESSAGE = "Betalingstjenesten svarer ikke akkurat nå. Prøv igjen om litt."


class FakePaymentSettings(ProviderSettings):
    """Settings of the fake PSP, from ``LEGETIME_PAYMENTS_FAKE_*``."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_PAYMENTS_FAKE_")

    authorization_ttl_hours: int = Field(
        default=7 * 24, gt=0, description="How long an authorization lasts before it lapses (card: 7 days)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC key of the webhooks; default: derived from the master secret."
    )
    webhook_tolerance_seconds: int = Field(
        default=300, gt=0, description="How far a webhook's timestamp may be from now (replay protection)."
    )
    latency_ms: int = Field(default=0, ge=0, description="Simulated network latency of every call.")


class CardDeclined(PaymentDeclined):
    """A ``PaymentDeclined`` that also names the recorded payment attempt (as Stripe's error object does)."""

    def __init__(self, message: str, *, payment_id: str) -> None:
        super().__init__(message)
        self.payment_id = payment_id


def _utcnow() -> datetime:
    return datetime.now(UTC)


# The approve route is a module-level function, but approving needs a provider object. Providers
# register themselves here, keyed by their database (two objects on one database share their state,
# so the newest is as good as any); weak values, so a discarded provider (a finished test) drops out.
# The route asks each live provider in turn — in a running platform there is exactly one.
_LIVE_PROVIDERS: weakref.WeakValueDictionary[str, FakePaymentProvider] = weakref.WeakValueDictionary()

metadata = MetaData()
payments = Table(
    "fake_psp_payment",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("reference", String(200), nullable=False),
    Column("description", String(200), nullable=False),
    Column("card", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("authorized", Integer, nullable=False, default=0),
    Column("captured", Integer, nullable=False, default=0),
    Column("released", Integer, nullable=False, default=0),
    Column("refunded", Integer, nullable=False, default=0),
    Column("declined", Boolean, nullable=False, default=False),
    Column("pending", Boolean, nullable=False, default=False),
    Column("expires_at", UTCDateTime()),
    Column("return_url", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    # The money invariants, enforced by the database as a last line of defence.
    CheckConstraint(
        "captured + released <= authorized AND refunded <= captured", name="ck_fake_psp_payment_amounts"
    ),
)
idempotency_keys = Table(
    "fake_psp_idempotency_key",
    metadata,
    Column("idempotency_key", String(300), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)


class FakePaymentProvider:
    """A card PSP simulated on the platform's database. Implements ``legetime.sdk.PaymentProvider``.

    ``now`` is the clock seam: tests pass their own to let authorizations expire without sleeping. It
    must return timezone-aware datetimes (a naive one is taken as UTC).
    """

    name = NAME
    payment_options = (PaymentOption(PaymentMethodKind.CARD, "Betalingskort (test)"),)

    def __init__(
        self,
        database: PluginDatabase,
        webhook_secret: bytes,
        *,
        authorization_ttl: timedelta = timedelta(days=7),
        webhook_tolerance: timedelta = timedelta(minutes=5),
        latency: timedelta = timedelta(0),
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = database
        self._secret = webhook_secret
        self._ttl = authorization_ttl
        self._tolerance = webhook_tolerance
        self._latency = latency.total_seconds()
        self._clock = now
        _LIVE_PROVIDERS[database.url] = self

    # --- PaymentProvider ---------------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Payment:
        """Authorize ``request.amount`` on the test card named by ``request.payment_method``."""
        card = request.payment_method or CARD_OK
        if card not in TEST_CARDS:
            raise ProviderError(
                f"Ukjent testkort {card!r}. Bruk et av: {', '.join(TEST_CARDS)}.",
                field="payment_method",
                code=ErrorCode.INVALID,
            )
        _require_positive(request.amount, "amount")
        _require_key(request.idempotency_key)
        await self._simulate_latency()
        if card == CARD_UNAVAILABLE:
            raise ProviderUnavailable(UNAVAILABLE_MESSAGE)
        fingerprint = _fingerprint(
            "reserve",
            amount=request.amount.amount,
            currency=request.amount.currency,
            reference=request.reference,
            return_url=request.return_url,
            payment_method=request.payment_method,
            description=request.description,
        )
        now = self._now()

        async def apply(session: AsyncSession) -> dict[str, Any]:
            payment_id = f"fakepay_{secrets.token_hex(12)}"
            authorized, pending, declined = request.amount.amount, False, False
            expires_at: datetime | None = now + self._ttl
            if card == CARD_DECLINED:
                authorized, declined, expires_at = 0, True, None
            elif card == CARD_3DS:
                authorized, pending, expires_at = 0, True, None  # no authorization until approved
            elif card == CARD_EXPIRING:
                expires_at = now - timedelta(seconds=1)
            row = {
                "payment_id": payment_id,
                "reference": request.reference,
                "description": request.description,
                "card": card,
                "currency": request.amount.currency,
                "amount": request.amount.amount,
                "authorized": authorized,
                "declined": declined,
                "pending": pending,
                "expires_at": expires_at,
                "return_url": request.return_url,
                "created_at": now,
            }
            await session.execute(insert(payments).values(row))
            if declined:
                return {"declined": {"payment_id": payment_id, "message": DECLINED_MESSAGE}}
            return {"payment": _dump(await self._load(session, payment_id, now))}

        return _replay(await self._modify(request.idempotency_key, fingerprint, now, apply))

    async def get(self, payment_id: str) -> Payment:
        """The current state (re-fetched from the PSP's store, never cached)."""
        await self._simulate_latency()
        now = self._now()
        return await self._run(lambda session: self._load(session, payment_id, now))

    async def capture(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        """Charge ``amount`` of what is authorized; partial and repeated captures are allowed."""
        _require_positive(amount, "amount")
        _require_key(idempotency_key)
        await self._simulate_latency()
        fingerprint = _fingerprint(
            "capture", payment_id=payment_id, amount=amount.amount, currency=amount.currency
        )
        now = self._now()

        async def apply(session: AsyncSession) -> dict[str, Any]:
            payment = await self._load(session, payment_id, now, lock=True)
            _require_currency(payment, amount)
            _require_authorization(payment)
            if payment.amounts.released:
                raise PaymentStateError("Reservasjonen er frigitt, så beløpet kan ikke trekkes.")
            remaining = _remaining(payment.amounts)
            if remaining == 0:
                raise PaymentStateError("Hele det reserverte beløpet er allerede trukket.")
            if _lapsed(payment, now):
                raise PaymentExpired("Reservasjonen har utløpt, så beløpet kan ikke lenger trekkes.")
            if amount.amount > remaining:
                left = Money(remaining, amount.currency)
                raise PaymentStateError(f"Kan ikke trekke {amount}: bare {left} er igjen av reservasjonen.")
            await self._change(session, payment_id, captured=payments.c.captured + amount.amount)
            return {"payment": _dump(await self._load(session, payment_id, now))}

        return _replay(await self._modify(idempotency_key, fingerprint, now, apply))

    async def release(self, payment_id: str, idempotency_key: str) -> Payment:
        """Cancel the rest of the authorization (all of it, or what a partial capture left). A payment still
        waiting for the payer is cancelled outright (as Stripe cancels a ``requires_action`` intent and
        Vipps a ``CREATED`` payment): it can no longer be approved, and nothing was ever reserved."""
        _require_key(idempotency_key)
        await self._simulate_latency()
        fingerprint = _fingerprint("release", payment_id=payment_id)
        now = self._now()

        async def apply(session: AsyncSession) -> dict[str, Any]:
            payment = await self._load(session, payment_id, now, lock=True)
            if payment.action_url is not None:  # the payer never approved: cancel the attempt
                await self._change(session, payment_id, pending=False, declined=True)
                return {"payment": _dump(await self._load(session, payment_id, now))}
            _require_authorization(payment)
            if payment.amounts.released:
                raise PaymentStateError("Reservasjonen er allerede frigitt.")
            remaining = _remaining(payment.amounts)
            if remaining == 0:
                raise PaymentStateError("Hele beløpet er trukket; det er ingen reservasjon å frigi.")
            if _lapsed(payment, now):
                raise PaymentExpired("Reservasjonen har allerede utløpt; det er ingenting å frigi.")
            await self._change(session, payment_id, released=remaining)
            return {"payment": _dump(await self._load(session, payment_id, now))}

        return _replay(await self._modify(idempotency_key, fingerprint, now, apply))

    async def refund(self, payment_id: str, amount: Money, idempotency_key: str) -> Payment:
        """Pay back (part of) what was captured; expiry of the authorization does not matter here."""
        _require_positive(amount, "amount")
        _require_key(idempotency_key)
        await self._simulate_latency()
        fingerprint = _fingerprint(
            "refund", payment_id=payment_id, amount=amount.amount, currency=amount.currency
        )
        now = self._now()

        async def apply(session: AsyncSession) -> dict[str, Any]:
            payment = await self._load(session, payment_id, now, lock=True)
            _require_currency(payment, amount)
            refundable = payment.amounts.captured - payment.amounts.refunded
            if payment.amounts.captured == 0:
                raise PaymentStateError("Ingenting er trukket, så ingenting kan refunderes.")
            if amount.amount > refundable:
                raise PaymentStateError(
                    f"Kan ikke refundere {amount}: bare {Money(refundable, amount.currency)} kan refunderes."
                )
            await self._change(session, payment_id, refunded=payments.c.refunded + amount.amount)
            return {"payment": _dump(await self._load(session, payment_id, now))}

        return _replay(await self._modify(idempotency_key, fingerprint, now, apply))

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes, url: str) -> WebhookEvent:
        """Verify the signature (constant-time) and the timestamp's freshness; say which payment changed.

        ``url`` is not signed by this PSP (Vipps signs it; Stripe does not)."""
        header = _header(headers, SIGNATURE_HEADER)
        if header is None:
            raise webhook_rejected(f"missing {SIGNATURE_HEADER} header")
        timestamp, signatures = _parse_signature(header)
        expected = self._sign(timestamp, body)
        if not any(hmac.compare_digest(expected, signature) for signature in signatures):
            raise webhook_rejected("signature does not match")
        age = self._now().timestamp() - timestamp
        if abs(age) > self._tolerance.total_seconds():
            raise webhook_rejected(
                f"timestamp is {int(age)} s from now (tolerance {int(self._tolerance.total_seconds())} s)"
            )
        try:
            payload = json.loads(body)
            event, payment_id = payload["type"], payload["data"]["payment_id"]
        except (ValueError, TypeError, KeyError) as exc:
            raise webhook_rejected(f"body is not a payment event ({exc.__class__.__name__})") from None
        if not isinstance(event, str) or not isinstance(payment_id, str):
            raise webhook_rejected("body is not a payment event")
        event_id = payload.get("id")
        return WebhookEvent(
            payment_id=payment_id, event=event, event_id=event_id if isinstance(event_id, str) else None
        )

    # --- Operators ----------------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """Its table answers (a read; no money moves: it is a simulation)."""
        async with self._db.transaction() as session:
            await session.execute(select(payments.c.payment_id).limit(1))
        return ProviderCheck(True, "The fake card PSP (a simulation) keeps its payments.")

    # --- Simulation controls -----------------------------------------------------------------------

    async def approve(self, payment_id: str) -> Payment:
        """The payer completes 3-D Secure: a PENDING payment becomes AUTHORIZED (its expiry starts now).

        What the ``action_url`` page does; tests call it directly. Approving twice is harmless; approving
        a declined or unknown payment raises ``PaymentStateError``."""
        payment, _ = await self._approve(payment_id)
        return payment

    def webhook_for(
        self, payment_id: str, event: str, *, at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A webhook as this PSP would send it: ``(headers, body)``, signed at ``at`` (default: now)."""
        timestamp = int((at or self._now()).timestamp())
        body = json.dumps(
            {
                "id": f"evt_{secrets.token_hex(8)}",
                "type": event,
                "created": timestamp,
                "data": {"payment_id": payment_id},
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: f"t={timestamp},v1={self._sign(timestamp, body)}",
        }
        return headers, body

    # --- Internals ---------------------------------------------------------------------------------

    async def _approve(self, payment_id: str) -> tuple[Payment, str | None]:
        await self._simulate_latency()
        now = self._now()

        async def work(session: AsyncSession) -> tuple[Payment, str | None]:
            payment = await self._load(session, payment_id, now, lock=True)
            if payment.amounts.authorized == 0 and payment.action_url is None:
                raise PaymentStateError("Betalingen ble avvist og kan ikke godkjennes.")
            if payment.action_url is not None:
                await self._change(
                    session,
                    payment_id,
                    pending=False,
                    authorized=payments.c.amount,
                    expires_at=now + self._ttl,
                )
            return_url = await session.scalar(
                select(payments.c.return_url).where(payments.c.payment_id == payment_id)
            )
            return await self._load(session, payment_id, now), return_url

        return await self._run(work)

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    async def _simulate_latency(self) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)

    def _sign(self, timestamp: int, body: bytes) -> str:
        return hmac.new(self._secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()

    async def _modify(
        self,
        key: str,
        fingerprint: str,
        now: datetime,
        apply: Callable[[AsyncSession], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Run ``apply`` once per idempotency key, in one transaction with the key's record."""

        async def work(session: AsyncSession) -> dict[str, Any]:
            row = (
                await session.execute(
                    select(idempotency_keys.c.fingerprint, idempotency_keys.c.response).where(
                        idempotency_keys.c.idempotency_key == key
                    )
                )
            ).first()
            if row is not None:
                if row.fingerprint != fingerprint:
                    raise IdempotencyConflict(
                        "Idempotensnøkkelen er allerede brukt til en annen forespørsel.",
                        field="idempotency_key",
                    )
                stored: dict[str, Any] = json.loads(row.response)
                return stored
            response = await apply(session)
            record = {"idempotency_key": key, "fingerprint": fingerprint, "response": json.dumps(response)}
            await session.execute(insert(idempotency_keys).values(**record, created_at=now))
            return response

        try:
            return await self._run(work)
        except exc.IntegrityError:
            # The same key in another process at the same moment: its transaction won, and rolled this one
            # back whole. Run again: the key is recorded now, so this is its replay (or its conflict).
            return await self._run(work)

    async def _run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction of its own (a change locks the row: ``_load(lock=True)``)."""
        try:
            async with self._db.transaction() as session:
                return await work(session)
        except exc.IntegrityError:
            raise  # a concurrent write of the same key or a broken invariant: for the caller to judge
        except exc.DBAPIError as error:  # unreachable, gone, locked for too long …
            raise ProviderUnavailable(UNAVAILABLE_MESSAGE) from error

    async def _load(
        self, session: AsyncSession, payment_id: str, now: datetime, *, lock: bool = False
    ) -> Payment:
        query = select(payments).where(payments.c.payment_id == payment_id)
        row = (await session.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            raise PaymentStateError(f"Fant ingen betaling med id {payment_id!r}.", code=ErrorCode.NOT_FOUND)
        amounts = PaymentAmounts(
            authorized=row.authorized, captured=row.captured, released=row.released, refunded=row.refunded
        )
        expires_at = row.expires_at if row.expires_at else None
        status = derive_status(
            amounts,
            declined=bool(row.declined),
            expired=expires_at is not None and now >= expires_at,
            pending=bool(row.pending),
        )
        return Payment(
            provider=NAME,
            payment_id=payment_id,
            amount=Money(row.amount, row.currency),
            amounts=amounts,
            status=status,
            expires_at=expires_at,
            action_url=APPROVE_PATH.format(payment_id=payment_id) if row.pending else None,
        )

    @staticmethod
    async def _change(session: AsyncSession, payment_id: str, **values: Any) -> None:
        await session.execute(update(payments).where(payments.c.payment_id == payment_id).values(**values))


# --- Helpers ---------------------------------------------------------------------------------------


def _remaining(amounts: PaymentAmounts) -> int:
    return amounts.authorized - amounts.captured - amounts.released


def _lapsed(payment: Payment, now: datetime) -> bool:
    return payment.expires_at is not None and now >= payment.expires_at


def _require_authorization(payment: Payment) -> None:
    if payment.action_url is not None:
        raise PaymentStateError("Betalingen venter fortsatt på godkjenning fra kortholderen.")
    if payment.amounts.authorized == 0:
        raise PaymentStateError("Betalingen ble avvist; det finnes ingen reservasjon.")


def _require_currency(payment: Payment, amount: Money) -> None:
    if amount.currency != payment.amount.currency:
        raise PaymentStateError(
            f"Feil valuta: betalingen er i {payment.amount.currency}, ikke {amount.currency}.",
            field="currency",
        )


def _require_positive(amount: Money, field: str) -> None:
    if amount.amount <= 0:
        raise ProviderError("Beløpet må være større enn null.", field=field, code=ErrorCode.INVALID)


def _require_key(key: str) -> None:
    if not key:
        raise ProviderError("Idempotensnøkkel mangler.", field="idempotency_key", code=ErrorCode.REQUIRED)


def _fingerprint(operation: str, **request: Any) -> str:
    """What makes two requests "the same" for idempotency: the operation and all its parameters."""
    canonical = json.dumps({"operation": operation, **request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _dump(payment: Payment) -> dict[str, Any]:
    """A payment as stored for replay: the first result, status included, exactly as it was."""
    return {
        "payment_id": payment.payment_id,
        "amount": payment.amount.amount,
        "currency": payment.amount.currency,
        "authorized": payment.amounts.authorized,
        "captured": payment.amounts.captured,
        "released": payment.amounts.released,
        "refunded": payment.amounts.refunded,
        "status": payment.status.value,
        "expires_at": _iso(payment.expires_at),
        "action_url": payment.action_url,
    }


def _replay(response: Mapping[str, Any]) -> Payment:
    """Turn a stored response into the call's result: a payment, or the decline raised again."""
    if "declined" in response:
        declined = response["declined"]
        raise CardDeclined(declined["message"], payment_id=declined["payment_id"])
    data = response["payment"]
    return Payment(
        provider=NAME,
        payment_id=data["payment_id"],
        amount=Money(data["amount"], data["currency"]),
        amounts=PaymentAmounts(
            authorized=data["authorized"],
            captured=data["captured"],
            released=data["released"],
            refunded=data["refunded"],
        ),
        status=PaymentStatus(data["status"]),
        expires_at=datetime.fromisoformat(data["expires_at"]) if data["expires_at"] else None,
        action_url=data["action_url"],
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Header lookup that ignores case, also for a plain dict (Starlette's ``Headers`` already does)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _parse_signature(header: str) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>…]`` — several v1 while a secret is being rotated."""
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise webhook_rejected(f"malformed {SIGNATURE_HEADER} header")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        raise webhook_rejected(f"malformed {SIGNATURE_HEADER} header")
    return int(timestamps[0]), signatures


# --- The 3-D Secure page ---------------------------------------------------------------------------


def _page(title: str, text: str, status_code: int = 200, form: str = "") -> HTMLResponse:
    html = (
        '<!doctype html><html lang="nb"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p>{form}</body></html>"
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


NOT_FOUND = ("Fant ikke betalingen", "Lenken er ugyldig eller utløpt.")


async def _find(payment_id: str) -> tuple[FakePaymentProvider, Payment] | None:
    """The live provider that holds the payment, and the payment as it is now."""
    for provider in reversed(list(_LIVE_PROVIDERS.values())):  # the newest first
        try:
            return provider, await provider.get(payment_id)
        except (PaymentStateError, ProviderUnavailable):
            continue
    return None


async def approve_endpoint(request: Request) -> Response:
    """``/plugins/payments-fake/approve/{payment_id}``: the payer "passes" 3-D Secure.

    GET only shows the page, with a button; the POST it sends approves. A link prefetcher or a preview
    that follows the link therefore approves nothing. After approving, the POST redirects (303) to the
    reservation's ``return_url`` when it has one (as a real 3-D Secure page does), otherwise shows a short
    page. The return URL comes from our own reserve call, never from this request.
    """
    payment_id = request.path_params["payment_id"]
    found = await _find(payment_id)
    if found is None:
        return _page(*NOT_FOUND, status_code=404)
    provider, payment = found
    if request.method != "POST":
        if payment.action_url is None:
            return _page("Betalingen kan ikke godkjennes", "Betalingen venter ikke på godkjenning.", 409)
        button = '<form method="post"><button type="submit">Godkjenn betalingen</button></form>'
        text = f"Bekreft at {payment.amount} kan reserveres på kortet ditt (testbetaling)."
        return _page("Godkjenn betalingen", text, form=button)
    try:
        payment, return_url = await provider._approve(payment_id)
    except PaymentStateError as exc:
        return _page("Betalingen kan ikke godkjennes", exc.message, status_code=409)
    except ProviderUnavailable:
        return _page(*NOT_FOUND, status_code=404)
    if return_url:
        return RedirectResponse(return_url, status_code=303)
    return _page(
        "Betalingen er godkjent",
        f"{payment.amount} er reservert på kortet ditt. Du kan lukke denne siden.",
    )


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(
    settings: FakePaymentSettings, context: ProviderContext, *, now: Callable[[], datetime] = _utcnow
) -> FakePaymentProvider:
    """The ``ProviderSpec`` factory. ``now`` is for tests (the platform never passes it)."""
    secret = (
        settings.webhook_secret.get_secret_value().encode()
        if settings.webhook_secret is not None
        else context.derive_key(WEBHOOK_KEY_PURPOSE)
    )
    return FakePaymentProvider(
        database=context.database,
        webhook_secret=secret,
        authorization_ttl=timedelta(hours=settings.authorization_ttl_hours),
        webhook_tolerance=timedelta(seconds=settings.webhook_tolerance_seconds),
        latency=timedelta(milliseconds=settings.latency_ms),
        now=now,
    )


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.PAYMENT,
            name=NAME,
            factory=create_provider,
            settings_model=FakePaymentSettings,
            description="Simulated card PSP with test cards (development and tests only).",
            test_only=True,
        )
    ]


@hookimpl
def register_tables() -> PluginTables:
    return PluginTables("fake_psp", metadata, Path(__file__).parent / "migrations" / "fake_psp")


@hookimpl
def register_routes() -> Iterable[Any]:
    return [Route(APPROVE_PATH, approve_endpoint, methods=["GET", "POST"], name="payments-fake-approve")]


@hookimpl
def plugin_info() -> Mapping[str, str]:
    return {"description": "Fake card payments: a realistic simulated PSP for development and tests."}
