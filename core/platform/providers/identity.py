"""Identity: log a person in (BankID and the like).

The flow is ``start`` → the frontend follows the challenge (redirect or poll/QR) → ``complete``.
Providers are stateless: ``start`` returns the state to keep, the core stores it (keyed by the opaque
``handle``) and hands it back to ``complete`` and ``cancel``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class AssuranceLevel(StrEnum):
    SUBSTANTIAL = "substantial"
    HIGH = "high"


@dataclass(frozen=True)
class LoginRequest:
    return_url: str | None = None
    """Where the provider sends the browser back (redirect flows)."""
    login_hint: str | None = None
    """A national ID the user typed, if the provider uses one (the test provider does)."""
    locale: str = "nb"


@dataclass(frozen=True)
class LoginChallenge:
    """What the frontend needs to let the user authenticate: a redirect, or something to poll."""

    redirect_url: str | None = None
    poll_interval_seconds: float | None = None
    autostart_token: str | None = None
    qr_data: str | None = None
    expires_at: datetime | None = None
    message: str | None = None


@dataclass(frozen=True)
class LoginStart:
    challenge: LoginChallenge
    state: dict[str, Any]
    """Provider state the core keeps until complete/cancel (JSON-serialisable)."""


@dataclass(frozen=True)
class VerifiedIdentity:
    national_id: str
    given_name: str
    family_name: str
    birth_date: date
    assurance_level: AssuranceLevel
    provider: str
    extra: Mapping[str, str] = field(default_factory=dict)
    country: str = "NO"
    """Who issued ``national_id`` (ISO 3166-1 alpha-2): ``"NO"`` a Norwegian national ID
    (``legetime.core.identity.nationalid``), ``"SE"`` a Swedish personnummer/samordningsnummer
    (``legetime.core.identity.swedish_personal_number``)."""


@dataclass(frozen=True)
class LoginPending:
    """Not finished yet (poll flows): show ``message`` and poll again."""

    message: str
    hint_code: str | None = None
    qr_data: str | None = None
    """A fresh QR code to show until the next poll (animated QR, e.g. Swedish BankID: it changes every
    second and is derived server side, so the frontend only ever gets the code, never the secret)."""


@runtime_checkable
class IdentityProvider(Protocol):
    name: str

    async def start(self, request: LoginRequest) -> LoginStart: ...

    async def complete(
        self, state: Mapping[str, Any], params: Mapping[str, str]
    ) -> VerifiedIdentity | LoginPending:
        """Finish the login. Raises ``IdentityRejected`` when the identity cannot be accepted."""
        ...

    async def cancel(self, state: Mapping[str, Any]) -> None: ...
