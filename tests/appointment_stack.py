"""A clinic to book at, set up through GraphQL as an operator does it, and the people who use it: the
demo mother, clinician and operator. Shared by the appointment tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from legetime.core.platform.config import Settings
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from tests.api import Api
from tests.conftest import seed_demo
from tests.migrated import upgrade
from tests.test_events import Recorder
from tests.test_notices import CLINICIAN, MOTHER, OPERATOR

APPOINTMENT = (
    "appointment { id number status mode startsAt endsAt caseId message insurerPays formsRequired "
    "clinic { id name } appointmentType { code name } clinician { id name } "
    "patient { givenName age } price { amount currency } forms { kind answers } deleted }"
)
SLOTS = (
    "query($clinic: ID!, $type: String!, $from: DateTime!, $to: DateTime!) { "
    "freeSlots(clinicId: $clinic, appointmentType: $type, notBefore: $from, notAfter: $to, first: 100) "
    "{ id startsAt endsAt clinician { id name } } }"
)
WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
VISIT = "visit"
"""An in-person examination (30 min, kr 950), with the health declaration: directly bookable."""
SURGERY = "surgery"
"""Day surgery (60 min, kr 4 500), with the health declaration and the insurer consent: staff book it."""
VIDEO = "video"
"""A video consultation (20 min, kr 650): directly bookable."""


class AppointmentStack:
    """The API and the platform behind it (its jobs in the process), with a clinic open every day."""

    def __init__(self, client: TestClient, platform: Platform, events: Recorder) -> None:
        self.client, self.platform, self.events = client, platform, events
        self.api = Api(client)
        self.login()
        self.clinic_id = self.open_clinic()

    def login(self) -> None:
        """(Again: a session lasts 12 hours, and a journey over days logs in anew.)"""
        self.mother, self.clinician = self.api.login(MOTHER), self.api.login(CLINICIAN)
        self.operator = self.api.login(OPERATOR)
        staff = self.api.gql("{ staffMembers { personId roles { role } } }", self.operator)["staffMembers"]
        [self.clinician_id] = [m["personId"] for m in staff if {"role": "CLINICIAN"} in m["roles"]]

    def open_clinic(self) -> str:
        api, operator = self.api, self.operator
        clinic = api.ok(
            "saveClinic",
            {"name": "Legetime Majorstuen", "address": "Kirkeveien 64, Oslo"},
            "clinic { id }",
            operator,
        )["clinic"]["id"]
        for code, name, mode, minutes, price, forms, direct in (
            (VISIT, "Undersøkelse", "IN_PERSON", 30, 95000, ["HEALTH_DECLARATION"], True),
            (
                SURGERY,
                "Dagkirurgi",
                "IN_PERSON",
                60,
                450000,
                ["HEALTH_DECLARATION", "INSURER_CONSENT"],
                False,
            ),
            (VIDEO, "Videokonsultasjon", "VIDEO", 20, 65000, [], True),
        ):
            kind = {
                "code": code,
                "name": name,
                "mode": mode,
                "minutes": minutes,
                "priceAmount": price,
                "forms": forms,
                "directlyBookable": direct,
            }
            api.ok("saveAppointmentType", kind, "appointmentType { code }", operator)
        hours = [
            {
                "clinicianId": self.clinician_id,
                "weekday": day,
                "opens": "08:00:00",
                "closes": "16:00:00",
                "slotMinutes": 30,
                "appointmentTypes": [VISIT, SURGERY, VIDEO],
            }
            for day in WEEKDAYS
        ]
        api.ok("setOpeningHours", {"clinicId": clinic, "hours": hours}, "hours { weekday }", operator)
        return str(clinic)

    def slots(
        self, kind: str = VISIT, *, days: float = 5, span: float = 1, token: str | None = None
    ) -> list[Any]:
        """Free times ``days`` from now, for ``span`` days."""
        start = datetime.now().astimezone() + timedelta(days=days)
        found = self.api.gql(
            SLOTS,
            token,
            clinic=self.clinic_id,
            type=kind,
            **{"from": start.isoformat(), "to": (start + timedelta(days=span)).isoformat()},
        )
        return list(found["freeSlots"])

    def book(
        self, slot: str | None, kind: str = VISIT, token: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """``bookAppointment``'s payload (errors included)."""
        wanted = {"clinicId": self.clinic_id, "appointmentType": kind, "slotId": slot, **extra}
        return self.api.mutate("bookAppointment", wanted, APPOINTMENT, token or self.mother)


@contextmanager
def appointment_stack(
    tmp_path: Path, database_url: str | None = None, **settings: Any
) -> Iterator[AppointmentStack]:
    if database_url is None:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'appointments.db'}"
        upgrade(database_url)
    config = Settings(data_dir=tmp_path / "data", database_url=database_url, **settings)
    seed_demo(config)
    events = Recorder()
    platform = Platform.create(config, extra_plugins=[events], load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        yield AppointmentStack(client, platform, events)
