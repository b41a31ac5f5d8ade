"""Persons, found by national ID without storing it in the clear: a keyed hash finds her, her own data key
seals the ID itself (see ``legetime.core.platform.crypto``). Her country (the ID's issuer) is stored with
her, in the clear, so that a request knows her rules without unsealing the ID."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.identity.countries import CountryRules, country_of_national_id, guardian_rules
from legetime.core.platform.crypto import KeyRing, WrappedKey, bound_to, keyed_hash, seal, unseal
from legetime.core.platform.db.models import Person

if TYPE_CHECKING:
    from datetime import date

    from legetime.core.platform.runtime import Platform


def lookup_hash(platform: Platform, national_id: str) -> str:
    # Not under the rotating master keys: a look-up must keep working across rotations.
    return keyed_hash(platform.derive_key("national-id-lookup"), national_id)


def new_person(
    platform: Platform, national_id: str, *, given_name: str, family_name: str, birth_date: date
) -> Person:
    key, wrapped = platform.keyring.new_data_key()
    person = Person(
        id=uuid.uuid4(),
        country=country_of_national_id(national_id).code,
        national_id_hash=lookup_hash(platform, national_id),
        key_id=wrapped.key_id,
        wrapped_key=wrapped.wrapped,
        given_name=given_name,
        family_name=family_name,
        birth_date=birth_date,
    )
    person.national_id_sealed = seal(key, national_id.encode(), bound_to(person.id, "national_id"))
    return person


def national_id(ring: KeyRing, person: Person) -> str:
    key = ring.unwrap(WrappedKey(person.key_id, person.wrapped_key))
    return unseal(key, person.national_id_sealed, bound_to(person.id, "national_id")).decode()


def country(person: Person) -> CountryRules:
    """The rules of the country that issued her national ID (stored with her: no unsealing)."""
    return guardian_rules(person.country)


async def find_person(session: AsyncSession, platform: Platform, national_id: str) -> Person | None:
    return await session.scalar(
        select(Person).where(Person.national_id_hash == lookup_hash(platform, national_id))
    )
