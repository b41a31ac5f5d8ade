"""Simulated BankID (identity provider ``bankid-test``) for synthetic test national IDs.

Why it exists: development, demos and tests need a login that behaves like BankID's app flow (start →
poll → done, or refused in the app) without a BankID test certificate. It is marked ``test_only``, so a
production configuration that enables it fails at start-up, and by default it only accepts *synthetic*
national IDs (Test-Norge, month + 80), which belong to no real person.

Flow and controls (the frontend or a test drives them through ``complete``'s ``params``):

* ``start(LoginRequest(login_hint=<national ID>))`` returns a poll challenge and the state to keep. The state
  is JSON: a format version, a random transaction id, the national ID and the expiry.
* ``complete(state, params)``:

  - ``params["poll_round"]`` is the 1-based number of this poll (missing means 1). The provider is
    stateless — ``complete`` cannot write to the state — so the caller counts. While the round is at most
    ``poll_rounds`` (setting, default 0) the answer is :class:`LoginPending`, like BankID's
    ``outstandingTransaction``/``userSign`` hints; after that the login succeeds. With ``poll_rounds = 0``
    the first ``complete`` succeeds.
  - ``params["simulate"]``: ``"cancelled_by_user"`` (the user pressed cancel in the app) or ``"expired"``
    (the app was never opened in time) end the login with :class:`IdentityRejected`.
  - After ``expires_at`` (``login_ttl_seconds``) every ``complete`` is :class:`IdentityRejected`.

* The verified person gets a deterministic name from the national ID (same ID, same name), a given name
  matching the sex digit, and the birth date read from the ID.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    AssuranceLevel,
    Capability,
    ErrorCode,
    IdentityRejected,
    InvalidNationalId,
    LoginChallenge,
    LoginPending,
    LoginRequest,
    LoginStart,
    NationalId,
    ProviderCheck,
    ProviderContext,
    ProviderSettings,
    ProviderSpec,
    ValidationError,
    VerifiedIdentity,
    hookimpl,
    parse_national_id,
)

NAME = "bankid-test"
STATE_VERSION = 1
LOGIN_HINT_FIELD = "loginHint"

SIMULATE_CANCELLED = "cancelled_by_user"
SIMULATE_EXPIRED = "expired"

GIVEN_NAMES = {
    "female": ("Kari", "Ingrid", "Nora", "Emma", "Sofie", "Astrid"),
    "male": ("Ola", "Per", "Lars", "Jakob", "Emil", "Henrik"),
}
FAMILY_NAMES = ("Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Berg", "Haugen", "Bakken")


class BankIdTestSettings(ProviderSettings):
    """Settings of the simulated BankID (``LEGETIME_BANKID_TEST_*``)."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_BANKID_TEST_")

    allow_non_synthetic: bool = Field(
        default=False,
        description="Also accept ordinary (non-synthetic) national IDs. Leave off: anyone could log in as "
        "anyone with a valid-looking number.",
    )
    login_ttl_seconds: int = Field(default=600, gt=0, le=3600, description="How long a started login lives.")
    poll_rounds: int = Field(
        default=0, ge=0, le=100, description="Polls answered with 'pending' before the login succeeds."
    )
    poll_interval_seconds: float = Field(
        default=2.0, gt=0, le=30, description="Poll interval told to clients."
    )


@dataclass(frozen=True)
class _State:
    transaction_id: str
    national_id: str
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "transaction_id": self.transaction_id,
            "national_id": self.national_id,
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> _State:
        try:
            if state["v"] != STATE_VERSION:
                raise ValueError("unknown version")
            expires_at = datetime.fromisoformat(state["expires_at"])
            if expires_at.tzinfo is None:
                raise ValueError("naive expiry")
            return cls(
                transaction_id=str(state["transaction_id"]),
                national_id=str(state["national_id"]),
                expires_at=expires_at,
            )
        except (KeyError, TypeError, ValueError):
            # The core keeps the state, so this is a bug or a stale format, never user input.
            raise IdentityRejected("Innloggingen er ugyldig. Start innloggingen på nytt.") from None


class SimulatedBankId:
    """Implements ``legetime.sdk.IdentityProvider``. Stateless: everything is in the state."""

    name = NAME

    def __init__(self, settings: BankIdTestSettings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))

    async def start(self, request: LoginRequest) -> LoginStart:
        if not request.login_hint or not request.login_hint.strip():
            raise ValidationError(
                "Oppgi fødselsnummeret til en syntetisk testperson.",
                field=LOGIN_HINT_FIELD,
                code=ErrorCode.REQUIRED,
            )
        national_id = self._accept(request.login_hint, field=LOGIN_HINT_FIELD)
        expires_at = self._clock() + timedelta(seconds=self.settings.login_ttl_seconds)
        state = _State(
            transaction_id=secrets.token_urlsafe(16), national_id=national_id.value, expires_at=expires_at
        )
        challenge = LoginChallenge(
            poll_interval_seconds=self.settings.poll_interval_seconds,
            expires_at=expires_at,
            message="Bekreft innloggingen i BankID (simulert)",
        )
        return LoginStart(challenge=challenge, state=state.to_json())

    async def complete(
        self, state: Mapping[str, Any], params: Mapping[str, str]
    ) -> VerifiedIdentity | LoginPending:
        login = _State.from_json(state)
        simulate = params.get("simulate")
        if simulate == SIMULATE_CANCELLED:
            raise IdentityRejected("Innloggingen ble avbrutt i BankID.")
        if simulate == SIMULATE_EXPIRED or self._clock() >= login.expires_at:
            raise IdentityRejected("Innloggingen ble ikke fullført i tide. Start innloggingen på nytt.")
        if simulate is not None:
            raise ValidationError(
                f"Ukjent simulering {simulate!r}; bruk {SIMULATE_CANCELLED!r} eller {SIMULATE_EXPIRED!r}.",
                field="simulate",
            )
        poll_round = _poll_round(params)
        if poll_round <= self.settings.poll_rounds:
            hint = "outstandingTransaction" if poll_round == 1 else "userSign"
            return LoginPending(
                message="Åpne BankID-appen og bekreft innloggingen (simulert).", hint_code=hint
            )
        national_id = self._accept(login.national_id, field=None)
        given_name, family_name = person_name_for(national_id)
        return VerifiedIdentity(
            national_id=national_id.value,
            given_name=given_name,
            family_name=family_name,
            birth_date=national_id.birth_date,
            assurance_level=AssuranceLevel.HIGH,
            provider=NAME,
            extra={"transaction_id": login.transaction_id, "simulated": "true"},
        )

    async def cancel(self, state: Mapping[str, Any]) -> None:
        # Nothing to tell a remote service; only make sure the state is ours.
        _State.from_json(state)

    async def check(self) -> ProviderCheck:
        """Nothing to reach and no state of its own (a login lives in its state)."""
        return ProviderCheck(True, "BankID test (a simulation) needs nothing outside the platform.")

    def _accept(self, value: str, *, field: str | None) -> NationalId:
        try:
            national_id = parse_national_id(value)
        except InvalidNationalId as error:
            raise InvalidNationalId(error.message, reason=error.reason, field=field) from None
        if not national_id.synthetic and not self.settings.allow_non_synthetic:
            raise IdentityRejected(
                "Testinnloggingen tar bare imot syntetiske testfødselsnummer (måned + 80).", field=field
            )
        return national_id


def _poll_round(params: Mapping[str, str]) -> int:
    raw = params.get("poll_round", "1")
    try:
        poll_round = int(raw)
    except (TypeError, ValueError):
        poll_round = 0
    if poll_round < 1:
        raise ValidationError("poll_round må være et heltall fra 1 og oppover.", field="poll_round")
    return poll_round


def person_name_for(national_id: NationalId) -> tuple[str, str]:
    """A stable, ordinary Norwegian name for a test person: the same ID always gets the same name."""
    digest = hashlib.sha256(national_id.value.encode()).digest()
    given_names = GIVEN_NAMES[national_id.sex]
    return given_names[digest[0] % len(given_names)], FAMILY_NAMES[digest[1] % len(FAMILY_NAMES)]


def _factory(settings: BankIdTestSettings, context: ProviderContext) -> SimulatedBankId:
    return SimulatedBankId(settings)


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.IDENTITY,
            name=NAME,
            factory=_factory,
            settings_model=BankIdTestSettings,
            description="Simulated BankID for synthetic test national IDs (month + 80); test only.",
            test_only=True,
        )
    ]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "Simulated BankID: logs in synthetic test persons with a BankID-like poll flow."}
