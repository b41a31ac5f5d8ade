"""Logging in and sessions.

A login runs through an identity provider: ``start_login`` keeps the provider's state under an opaque
handle (only its hash is stored), ``complete_login`` creates or updates the person from the verified
identity and opens a session. The session token is opaque and random; only its keyed hash (HMAC with a
key derived from the master secret) is stored, so a database leak gives no usable tokens. Sessions
expire and are revocable: one by ``logout``, all of a person's by ``end_sessions`` (her erasure).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.identity import integrators, persons
from legetime.core.identity.actors import ANONYMOUS, Actor
from legetime.core.identity.countries import rules_for
from legetime.core.platform.crypto import seal, unseal
from legetime.core.platform.db.base import utcnow
from legetime.core.platform.db.models import AuthSession, LoginTransaction, Person, StaffMembership
from legetime.core.platform.errors import ErrorCode, LegetimeError, ValidationError
from legetime.core.platform.providers import IDENTITY
from legetime.core.platform.providers.identity import (
    LoginChallenge,
    LoginPending,
    LoginRequest,
    VerifiedIdentity,
)

if TYPE_CHECKING:
    from legetime.core.platform.runtime import Platform


class LoginFailed(LegetimeError):
    code = ErrorCode.IDENTITY_REJECTED


@dataclass(frozen=True)
class StartedLogin:
    handle: str
    provider: str
    challenge: LoginChallenge


@dataclass(frozen=True)
class CompletedLogin:
    token: str
    person: Person
    expires_at: object


def _hash(platform: Platform, purpose: str, secret: str) -> str:
    return hmac.new(platform.derive_key(purpose), secret.encode(), hashlib.sha256).hexdigest()


async def start_login(
    session: AsyncSession,
    platform: Platform,
    *,
    provider: str | None,
    login_hint: str | None,
    return_url: str | None,
) -> StartedLogin:
    try:
        identity = platform.providers.get(IDENTITY, provider)
    except LookupError:
        raise ValidationError("Ukjent innloggingsmetode.", field="provider") from None
    started = await identity.start(LoginRequest(return_url=return_url, login_hint=login_hint))
    handle = secrets.token_urlsafe(32)
    ttl = timedelta(minutes=platform.settings.login_ttl_minutes)
    login_id = uuid.uuid4()
    session.add(
        LoginTransaction(
            id=login_id,
            handle_hash=_hash(platform, "login-handle", handle),
            provider=identity.name,
            state_sealed=_seal_state(platform, login_id, dict(started.state)),
            expires_at=utcnow() + ttl,
        )
    )
    await session.flush()
    return StartedLogin(handle=handle, provider=identity.name, challenge=started.challenge)


async def complete_login(
    session: AsyncSession, platform: Platform, *, handle: str, params: dict[str, str]
) -> CompletedLogin | LoginPending:
    login = await session.scalar(
        select(LoginTransaction).where(
            LoginTransaction.handle_hash == _hash(platform, "login-handle", handle)
        )
    )
    if login is None or login.finished_at is not None or login.expires_at <= utcnow():
        raise LoginFailed("Innloggingen er utløpt eller ukjent. Start på nytt.", field="handle")
    identity = platform.providers.get(IDENTITY, login.provider)
    login.polls += 1
    state = _open_state(platform, login)
    result = await identity.complete(state, {**params, "poll_round": str(login.polls)})
    if isinstance(result, LoginPending):
        return result
    login.finished_at = utcnow()
    if rules_for(result.country) is None:
        # Only countries in the country-rules table (legetime.core.identity.countries) are served.
        raise LoginFailed(
            "Du er logget inn med en e-legitimasjon fra et land tjenesten ikke tar imot ennå.",
            field="provider",
        )
    login.state_sealed = _seal_state(platform, login.id, {})  # nothing of the login is kept
    person = await upsert_person(session, platform, result)
    token = secrets.token_urlsafe(32)
    expires_at = utcnow() + timedelta(hours=platform.settings.session_ttl_hours)
    session.add(
        AuthSession(
            token_hash=_hash(platform, "session-token", token),
            person_id=person.id,
            provider=result.provider,
            assurance_level=result.assurance_level.value,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return CompletedLogin(token=token, person=person, expires_at=expires_at)


def _seal_state(platform: Platform, login_id: uuid.UUID, state: dict[str, Any]) -> bytes:
    """A provider's login state may hold a national ID or secrets (QR secret, PKCE verifier): sealed."""
    aad = f"legetime:{login_id}:login_state".encode()
    return seal(platform.derive_key("login-state"), json.dumps(state).encode(), aad)


def _open_state(platform: Platform, login: LoginTransaction) -> dict[str, Any]:
    aad = f"legetime:{login.id}:login_state".encode()
    state: dict[str, Any] = json.loads(unseal(platform.derive_key("login-state"), login.state_sealed, aad))
    return state


async def upsert_person(session: AsyncSession, platform: Platform, identity: VerifiedIdentity) -> Person:
    """The person a verified identity names: created on first login, name kept current after (unless she
    has corrected it herself)."""
    today = utcnow().astimezone(platform.settings.zone).date()
    rules = rules_for(identity.country)
    if rules is None:
        raise LoginFailed("Tjenesten tar ikke imot e-legitimasjon fra dette landet.", field="provider")
    # The number is validated by its own country's rules: a Norwegian one as fødselsnummer/D-nummer, a
    # Swedish one as personnummer/samordningsnummer. Formats are disjoint, so look-ups never cross countries.
    national_id = rules.parse(identity.national_id, born_by=today)
    person = await persons.find_person(session, platform, national_id.value)
    if person is None:
        person = persons.new_person(
            platform,
            national_id.value,
            given_name=identity.given_name,
            family_name=identity.family_name,
            birth_date=identity.birth_date,
        )
        session.add(person)
    elif person.name_rectified_at is None:
        person.given_name, person.family_name = identity.given_name, identity.family_name
    await session.flush()
    return person


# One statement on every request: the session with its person's current staff roles (a row per role) and her
# country (the guardian rules of ``countries``). Built once: building it costs more than running it. Of the
# tables, not the mapped classes: without ORM entities it skips the ORM's execution and loading.
_SESSIONS, _PERSONS, _MEMBERSHIPS = AuthSession.__table__, Person.__table__, StaffMembership.__table__
_SESSION_OF_TOKEN = (
    select(_SESSIONS.c.id, _SESSIONS.c.person_id, _SESSIONS.c.revoked_at, _SESSIONS.c.expires_at)
    .add_columns(_MEMBERSHIPS.c.role, _PERSONS.c.country)
    .join(_PERSONS, _PERSONS.c.id == _SESSIONS.c.person_id)
    .outerjoin(
        _MEMBERSHIPS,
        and_(_MEMBERSHIPS.c.person_id == _SESSIONS.c.person_id, _MEMBERSHIPS.c.ended_at.is_(None)),
    )
    .where(_SESSIONS.c.token_hash == bindparam("token_hash"))
)


async def authenticate(session: AsyncSession, platform: Platform, token: str | None) -> Actor:
    """The actor a bearer token stands for; anonymous for none, an unknown, expired or revoked one."""
    if not token:
        return ANONYMOUS
    if token.startswith(integrators.TOKEN_PREFIX):
        return await integrators.authenticate(session, platform, token)
    rows = (
        await session.execute(_SESSION_OF_TOKEN, {"token_hash": _hash(platform, "session-token", token)})
    ).all()
    if not rows or rows[0].revoked_at is not None or rows[0].expires_at <= utcnow():
        return ANONYMOUS
    first = rows[0]
    roles = frozenset(row.role for row in rows if row.role is not None)
    return Actor(person_id=first.person_id, staff_roles=roles, session_id=first.id, country=first.country)


async def end_sessions(session: AsyncSession, person_id: uuid.UUID, *, at: datetime) -> int:
    """End every open session of a person (all her logins, not only the current request's), in the
    caller's transaction; her tokens stand for nobody from the next request on. Returns how many."""
    result = await session.execute(
        update(AuthSession)
        .where(AuthSession.person_id == person_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def logout(session: AsyncSession, actor: Actor) -> bool:
    if actor.session_id is None:
        return False
    await session.execute(
        update(AuthSession).where(AuthSession.id == actor.session_id).values(revoked_at=utcnow())
    )
    return True
