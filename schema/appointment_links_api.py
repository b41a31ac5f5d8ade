"""The links in the texts before a visit, as the frontend's link page (``/t/<token>``) uses them: what a
link is for (without a login), registering arrival (without a login: the link is the proof), and the
health forms (after BankID, from the link or from the app). The rules live in
``legetime.core.appointments.links``, ``link_pages`` and ``forms``."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON

from legetime.core.appointments import access, forms, link_pages, links
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db import appointment_models as am
from legetime.core.platform.errors import ValidationError
from legetime.schema.appointment_api import Appointment, views
from legetime.schema.clinic_api import FormKind, parse_uuid
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate

LinkPurpose = strawberry.enum(
    links.LinkPurpose, name="AppointmentLinkPurpose", description="What a link in a text is for."
)


@strawberry.type(
    description="What a link from a text shows before any login: its purpose, when and where, and which "
    "forms are still missing (forms links). Nothing about the patient or the kind of visit."
)
class AppointmentLink:
    purpose: LinkPurpose  # type: ignore[valid-type]
    starts_at: datetime | None
    clinic_name: str
    clinic_address: str
    forms_missing: list[FormKind]  # type: ignore[valid-type]


@strawberry.input
class RegisterArrivalInput:
    token: str = strawberry.field(description="The token of the arrival link (`/t/<token>`).")


@strawberry.input
class SubmitAppointmentFormInput:
    kind: FormKind  # type: ignore[valid-type]
    answers: JSON = strawberry.field(description="Question id -> answer, as the form's `questionnaire` asks.")
    token: str | None = strawberry.field(default=None, description="The token of the forms link.")
    appointment_id: strawberry.ID | None = strawberry.field(
        default=None, description="From the app, without the link: one of her appointments."
    )


@strawberry.type
class RegisterArrivalPayload:
    arrived_at: datetime | None = None
    appointment: Appointment | None = strawberry.field(
        default=None,
        description="The appointment, when the one who registered is logged in and may read it; null "
        "for the link alone (a link does not show who the patient is).",
    )
    errors: list[Error]


@strawberry.type
class SubmitAppointmentFormPayload:
    appointment: Appointment | None = None
    errors: list[Error]


async def _readable_view(ctx: Ctx, row: am.Appointment) -> Appointment | None:
    """The appointment as the actor may see it; nothing for the link alone."""
    if ctx.actor.person_id is None:
        return None
    found = await ctx.session.scalar(
        select(am.Appointment.id).where(am.Appointment.id == row.id, access.readable(ctx.actor, ctx.today))
    )
    return (await views(ctx, [row]))[0] if found is not None else None


@strawberry.type
class AppointmentLinkQuery:
    @strawberry.field(
        description="The page of a link from a text, without login. LINK_EXPIRED when its time is out or "
        "the appointment moved; NOT_FOUND for a link that is not ours."
    )
    async def appointment_link(self, info: Info, token: str) -> AppointmentLink:
        ctx = await info.context.read()
        page = await link_pages.open_link(ctx, token)
        return AppointmentLink(
            purpose=page.purpose,
            starts_at=page.starts_at,
            clinic_name=page.clinic_name,
            clinic_address=page.clinic_address,
            forms_missing=page.forms_missing,
        )


@strawberry.type
class AppointmentLinkMutation:
    @strawberry.mutation(
        description="She has arrived: from the arrival link, without login, from an hour before the start "
        "until the end. Registering again answers the same."
    )
    async def register_arrival(self, info: Info, input: RegisterArrivalInput) -> RegisterArrivalPayload:
        result: list[RegisterArrivalPayload] = []

        async def run(ctx: Ctx) -> am.Appointment:
            row = await link_pages.arrive_by_link(ctx, input.token)
            await ctx.session.flush()
            result.append(
                RegisterArrivalPayload(
                    arrived_at=row.arrived_at, appointment=await _readable_view(ctx, row), errors=[]
                )
            )
            return row

        row, errors = await mutate(info, run)
        if row is None or not result:
            return RegisterArrivalPayload(errors=errors)
        return result[0]

    @strawberry.mutation(
        description="Send a form before the visit, logged in with BankID, as the patient or her guardian: "
        "with the forms link's `token`, or from the app with `appointmentId`. Sending it again before the "
        "visit replaces it."
    )
    async def submit_appointment_form(
        self, info: Info, input: SubmitAppointmentFormInput
    ) -> SubmitAppointmentFormPayload:
        result: list[Appointment] = []
        kind = am.FormKind(input.kind).value

        async def run(ctx: Ctx) -> am.Appointment:
            if input.token is not None:
                row = await forms.submit_form(ctx, input.token, kind, input.answers)
            elif input.appointment_id is not None:
                appointment_id = parse_uuid(input.appointment_id, "appointmentId")
                row = await forms.submit_form_in_app(ctx, appointment_id, kind, input.answers)
            else:
                raise ValidationError("Oppgi lenken eller timen.", field="token")
            await ctx.session.flush()
            result.extend(await views(ctx, [row]))
            return row

        row, errors = await mutate(info, run)
        return SubmitAppointmentFormPayload(
            appointment=result[0] if row is not None and result else None, errors=errors
        )
