"""An example of a clinic system's scheduling provider: slots are read and booked in the clinic's own
booking system over its HTTP API (``tests/fakes/clinic_booking.py`` documents it), nothing is kept in
Legetime. Registered only in tests (``SPEC``, or this module as a plugin): it shows how a clinic system
plugs in, and gives the scheduling contract a second provider.

The API calls used: ``GET /v1/slots`` (free slots), ``POST /v1/bookings`` (book; the system enforces one
booking per slot and is idempotent by ``externalReference``), ``DELETE /v1/bookings/{id}`` (cancel) and
``GET /v1/practitioners`` (the read-only ``check``), all with a bearer token.

The clinic's hours are kept in its system, so ``management.opening_hours`` is False and
``set_opening_hours`` raises ``NotSupported``. The system serves one clinic: ``clinic_id`` names it in
Legetime; clinicians are the platform's person ids, which the system records for its practitioners.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    Booking,
    Capability,
    HttpsUrl,
    IdempotencyConflict,
    NotFound,
    NotSupported,
    OpeningHours,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    ScheduleManagement,
    Slot,
    SlotQuery,
    SlotTaken,
    ValidationError,
    hookimpl,
)

NAME = "clinic-booking"
UNAVAILABLE = "Klinikkens timebok svarer ikke akkurat nå. Prøv igjen om litt."


class ClinicBookingSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="LEGETIME_SCHEDULING_CLINIC_BOOKING_")

    base_url: HttpsUrl = Field(description="The clinic booking system's API address.")
    api_token: SecretStr = Field(description="Bearer token for the clinic booking system's API.")
    clinic_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="The Legetime clinic whose bookings this system keeps."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="HTTP timeout per call.")


class ClinicBookingScheduling:
    """Implements ``legetime.sdk.SchedulingProvider`` against a clinic's own booking system."""

    name = NAME
    management = ScheduleManagement(
        opening_hours=False, notes=["Åpningstider og timer føres i klinikkens eget timebokssystem."]
    )

    def __init__(self, settings: ClinicBookingSettings) -> None:
        self.settings = settings

    async def find_slots(self, query: SlotQuery) -> list[Slot]:
        if query.clinic_id != self.settings.clinic_id:
            return []  # not the clinic this system serves
        params = {
            "from": max(query.not_before, datetime.now(UTC)).isoformat(),
            "to": query.not_after.isoformat(),
            "type": query.appointment_type,
            "limit": str(query.limit),
        }
        if query.clinician_id is not None:
            params["practitioner"] = str(query.clinician_id)
        response = await self._call("GET", "/v1/slots", params=params)
        if response.status_code == 400:
            raise ValidationError("Ugyldig søk etter ledige timer.", field="query")
        self._expect(response, 200)
        return [self._slot(item) for item in response.json()["slots"]]

    async def book(self, slot_id: str, reference: str) -> Booking:
        if not slot_id:
            raise NotFound("Fant ikke timen.", field="slot_id")
        response = await self._call(
            "POST", "/v1/bookings", json={"slotId": slot_id, "externalReference": reference}
        )
        error = _error(response)
        if response.status_code == 409 and error == "slot_taken":
            raise SlotTaken(
                "Timen ble nettopp bestilt av noen andre. Velg en annen ledig time.", field="slot_id"
            )
        if response.status_code == 409 and error == "reference_in_use":
            raise IdempotencyConflict("Referansen har allerede en annen time.", field="reference")
        if response.status_code in (404, 422):
            raise NotFound("Fant ikke timen. Velg en annen ledig time.", field="slot_id")
        self._expect(response, 200, 201)
        data = response.json()
        return Booking(
            provider_id=data["id"], slot=self._slot(data["slot"]), reference=data["externalReference"]
        )

    async def release(self, booking_id: str) -> None:
        response = await self._call("DELETE", f"/v1/bookings/{quote(booking_id, safe='')}")
        if response.status_code == 404:
            raise NotFound("Fant ikke bestillingen.", field="booking_id")
        self._expect(response, 204)

    async def opening_hours(self, clinic_id: uuid.UUID) -> list[OpeningHours]:
        return []  # kept in the clinic's system, which does not expose them

    async def set_opening_hours(self, clinic_id: uuid.UUID, hours: list[OpeningHours]) -> None:
        raise NotSupported("Åpningstidene føres i klinikkens eget timebokssystem.", field="hours")

    async def check(self) -> ProviderCheck:
        try:
            response = await self._call("GET", "/v1/practitioners")
        except ProviderUnavailable:
            return ProviderCheck(False, "The clinic booking system is unreachable.")
        if response.status_code == 401:
            return ProviderCheck(False, "The clinic booking system refused the API token (HTTP 401).")
        if response.status_code != 200:
            return ProviderCheck(False, f"The clinic booking system answered HTTP {response.status_code}.")
        return ProviderCheck(True, "The clinic booking system accepted the API token.")

    # --- Internals ---------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.settings.api_token.get_secret_value()}"}
        try:
            async with httpx.AsyncClient(
                base_url=self.settings.base_url, timeout=self.settings.timeout_seconds, headers=headers
            ) as client:
                response = await client.request(method, path, **options)
        except httpx.HTTPError as error:
            raise ProviderUnavailable(UNAVAILABLE) from error
        if response.status_code >= 500:
            raise ProviderUnavailable(UNAVAILABLE)
        return response

    @staticmethod
    def _expect(response: httpx.Response, *statuses: int) -> None:
        if response.status_code == 401:
            raise ProviderError("Klinikkens timebok avviste API-nøkkelen.")
        if response.status_code not in statuses:
            raise ProviderError(f"Klinikkens timebok svarte uventet (HTTP {response.status_code}).")

    def _slot(self, item: dict[str, Any]) -> Slot:
        return Slot(
            provider_id=item["id"],
            clinic_id=self.settings.clinic_id,
            clinician_id=uuid.UUID(item["practitioner"]),
            appointment_type=item["type"],
            starts_at=datetime.fromisoformat(item["start"]),
            ends_at=datetime.fromisoformat(item["end"]),
        )


def _error(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def create_provider(settings: ClinicBookingSettings, context: ProviderContext) -> ClinicBookingScheduling:
    return ClinicBookingScheduling(settings)


SPEC = ProviderSpec(
    capability=Capability.SCHEDULING,
    name=NAME,
    factory=create_provider,
    settings_model=ClinicBookingSettings,
    description="Example: slots read and booked in a clinic's own booking system (tests only).",
)


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [SPEC]
