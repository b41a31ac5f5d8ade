"""Logging in (startLogin/completeLogin/logout), who am I (me), and the patient's phone number."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from legetime.core.consultation import consents
from legetime.core.consultation.access import require_person
from legetime.core.consultation.consents import CONSENT_TEXTS
from legetime.core.identity import auth, persons
from legetime.core.identity.ctx import Ctx
from legetime.core.identity.phone import normalize_phone, phone_region
from legetime.core.platform.db.models import ConsentPurpose as CorePurpose
from legetime.core.platform.db.models import Person
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.identity import LoginPending
from legetime.core.platform.rate_limits import LOGIN_POLL, LOGIN_START, RateLimited
from legetime.core.protection import audit
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate

ConsentPurpose = strawberry.enum(CorePurpose, name="ConsentPurpose")


@strawberry.type(description="A consent's current state for the signed-in person.")
class ConsentState:
    purpose: ConsentPurpose  # type: ignore[valid-type]
    granted: bool
    current_text_version: str
    text: str


@strawberry.type(description="The signed-in person.")
class Me:
    given_name: str
    family_name: str
    birth_date: date
    phone: str | None
    roles: list[str]
    _person: strawberry.Private[Person]

    @strawberry.field(description="Her national ID (stored encrypted; shown only to herself).")
    def national_id(self, info: Info) -> str:
        return persons.national_id(info.context.platform.keyring, self._person)

    @strawberry.field(description="When she restricted processing of her data (GDPR art. 18), if she has.")
    def restricted_since(self) -> datetime | None:
        return self._person.restricted_at

    @strawberry.field(description="Her own consents (not per case), one per purpose.")
    async def consents(self, info: Info) -> list[ConsentState]:
        ctx = await info.context.read()
        out = []
        for purpose, text in CONSENT_TEXTS.items():
            granted = await consents.current(ctx.session, self._person.id, purpose, None)
            out.append(
                ConsentState(
                    purpose=purpose, granted=granted, current_text_version=text.version, text=text.text
                )
            )
        return out


def me_of(person: Person, roles: list[str]) -> Me:
    return Me(
        given_name=person.given_name,
        family_name=person.family_name,
        birth_date=person.birth_date,
        phone=person.phone,
        roles=roles,
        _person=person,
    )


async def load_me(info: Info, ctx: Ctx | None = None) -> Me | None:
    actor = info.context.actor
    if actor.person_id is None:
        return None
    ctx = ctx or await info.context.read()
    person = await ctx.session.get(Person, actor.person_id)
    if person is None:
        return None
    roles = ["patient", *sorted(role.value for role in actor.staff_roles)]
    return me_of(person, roles)


@strawberry.type
class LoginQuery:
    @strawberry.field(description="The signed-in person; null when not signed in.")
    async def me(self, info: Info) -> Me | None:
        return await load_me(info)

    @strawberry.field(description="Login methods the frontend can offer.")
    def login_providers(self, info: Info) -> list[str]:
        return info.context.platform.providers.names(Capability.IDENTITY)


@strawberry.input
class StartLoginInput:
    provider: str | None = strawberry.field(default=None, description="Default: the first enabled.")
    national_id: str | None = strawberry.field(default=None, description="For providers that ask for it.")
    return_url: str | None = None


@strawberry.type
class StartLoginPayload:
    handle: str | None = None
    provider: str | None = None
    redirect_url: str | None = None
    poll_interval_seconds: float | None = None
    qr_data: str | None = None
    autostart_token: str | None = None
    expires_at: datetime | None = None
    message: str | None = None
    errors: list[Error]


@strawberry.input
class CompleteLoginInput:
    handle: str
    params: JSON | None = strawberry.field(
        default=None, description="What the provider sent back (code, state)."
    )


@strawberry.type
class CompleteLoginPayload:
    token: str | None = strawberry.field(default=None, description="Send as `Authorization: Bearer <token>`.")
    expires_at: datetime | None = None
    pending: bool = strawberry.field(default=False, description="Not confirmed yet: poll again.")
    message: str | None = None
    qr_data: str | None = strawberry.field(
        default=None, description="While pending: the QR code to show until the next poll (animated QR)."
    )
    me: Me | None = None
    errors: list[Error]


@strawberry.type
class LogoutPayload:
    ok: bool
    errors: list[Error]


@strawberry.input
class UpdateMyPhoneInput:
    phone: str = strawberry.field(
        description="Her mobile number. Written without a country code (070-123 45 67) it is read as a "
        "number of her own country (the issuer of her national ID), or of `country`; with + or 00 "
        "(+46 70 123 45 67) as written."
    )
    country: str | None = strawberry.field(
        default=None,
        description="The country (ISO 3166-1 alpha-2, e.g. DK) of a number written without a country "
        "code, when it is not her own; null or empty: her own.",
    )


@strawberry.type
class UpdateMyPhonePayload:
    me: Me | None = None
    errors: list[Error]


@strawberry.type
class LoginMutation:
    @strawberry.mutation(description="Start logging in; returns what the frontend needs (redirect or poll).")
    async def start_login(self, info: Info, input: StartLoginInput) -> StartLoginPayload:
        try:
            await info.context.limit(LOGIN_START)
        except RateLimited as exc:
            return StartLoginPayload(errors=[Error.from_exception(exc)])

        async def work(ctx: Ctx) -> auth.StartedLogin:
            return await auth.start_login(
                ctx.session,
                ctx.platform,
                provider=input.provider,
                login_hint=input.national_id,
                return_url=input.return_url,
            )

        started, errors = await mutate(info, work)
        if started is None:
            return StartLoginPayload(errors=errors)
        challenge = started.challenge
        return StartLoginPayload(
            handle=started.handle,
            provider=started.provider,
            redirect_url=challenge.redirect_url,
            poll_interval_seconds=challenge.poll_interval_seconds,
            qr_data=challenge.qr_data,
            autostart_token=challenge.autostart_token,
            expires_at=challenge.expires_at,
            message=challenge.message,
            errors=[],
        )

    @strawberry.mutation(description="Finish logging in; returns a session token when confirmed.")
    async def complete_login(self, info: Info, input: CompleteLoginInput) -> CompleteLoginPayload:
        try:
            await info.context.limit(LOGIN_POLL)
        except RateLimited as exc:
            return CompleteLoginPayload(errors=[Error.from_exception(exc)])
        raw: dict[str, Any] = dict(cast(dict[str, Any], input.params or {}))
        params = {str(key): str(value) for key, value in raw.items()}

        async def work(ctx: Ctx) -> tuple[auth.CompletedLogin | LoginPending, Me | None]:
            result = await auth.complete_login(ctx.session, ctx.platform, handle=input.handle, params=params)
            if isinstance(result, LoginPending):
                return result, None
            actor = await auth.authenticate(ctx.session, ctx.platform, result.token)
            roles = ["patient", *sorted(role.value for role in actor.staff_roles)]
            return result, me_of(result.person, roles)

        outcome, errors = await mutate(info, work)
        if outcome is None:
            return CompleteLoginPayload(errors=errors)
        result, me = outcome
        if isinstance(result, LoginPending):
            return CompleteLoginPayload(
                pending=True, message=result.message, qr_data=result.qr_data, errors=[]
            )
        return CompleteLoginPayload(token=result.token, expires_at=result.expires_at, me=me, errors=[])  # type: ignore[arg-type]

    @strawberry.mutation(description="End the session of the token this request carries.")
    async def logout(self, info: Info) -> LogoutPayload:
        async def work(ctx: Ctx) -> bool:
            return await auth.logout(ctx.session, ctx.actor)

        ok, errors = await mutate(info, work)
        if ok:  # committed: the sockets logged in with this token close too, in every process
            info.context.platform.live.end_sessions(session_id=info.context.actor.session_id)
        return LogoutPayload(ok=bool(ok), errors=errors)

    @strawberry.mutation(description="Register or change the phone number SMS notices go to.")
    async def update_my_phone(self, info: Info, input: UpdateMyPhoneInput) -> UpdateMyPhonePayload:
        async def work(ctx: Ctx) -> Me | None:
            person_id = require_person(ctx.actor)
            person = await ctx.session.get(Person, person_id)
            assert person is not None
            region = phone_region(input.country, otherwise=person.country)
            person.phone = normalize_phone(input.phone, default_region=region)
            await audit.log(
                ctx,
                person_id=person_id,
                object_type="person",
                object_id=str(person_id),
                action="update_phone",
            )
            return await load_me(info, ctx)

        me, errors = await mutate(info, work)
        return UpdateMyPhonePayload(me=me, errors=errors)
