"""Each image has a data key of its own, deleted with it: withdrawing consent to storing images shreds the
image at once — a copy of the database and storage taken before cannot open it with the keys that remain —
while it downloads for the patient and the clinician until then; master-key rotation rewraps image keys;
images stored before revision 0012 (sealed with the case's communication key) keep working and
``legetime storage rekey`` gives them keys of their own. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import inspect, select, text, update
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.crypto import (
    Tampered,
    WrappedKey,
    bound_to,
    generate_master_key_entry,
    seal,
    unseal,
)
from legetime.core.platform.db import models
from legetime.core.platform.db.migrate import downgrade, upgrade
from legetime.core.platform.providers import STORAGE
from legetime.core.platform.runtime import Platform
from legetime.core.protection import content
from legetime.schema.app import create_app
from legetime.schema.mutation import global_uuid
from tests.api import SUBMIT_FIELDS, Api
from tests.cli import run_cli
from tests.conftest import seed_demo
from tests.test_case_rules import draft_case

MOTHER, CLINICIAN = DEMO_PEOPLE[2].national_id, DEMO_PEOPLE[0].national_id
FIRST_KEY = generate_master_key_entry("2026-12")
IMAGE_QUERY = "query($id: ID!) { case(id: $id) { attachments { id url } } }"


@dataclass
class World:
    api: Api
    data_dir: Path
    database_url: str | None

    def settings(self, master_keys: str = FIRST_KEY) -> Settings:
        return Settings(data_dir=self.data_dir, database_url=self.database_url, master_keys=master_keys)

    def env(self, master_keys: str = FIRST_KEY) -> dict[str, str]:
        env = {"LEGETIME_DATA_DIR": str(self.data_dir), "LEGETIME_MASTER_KEYS": master_keys}
        if self.database_url:
            env["LEGETIME_DATABASE_URL"] = self.database_url
        return env

    def run(self, work: Any, master_keys: str = FIRST_KEY) -> Any:
        """Core code against the database, from the test's thread (a platform on its own event loop)."""

        async def isolated() -> Any:
            platform = Platform.create(self.settings(master_keys), load_entry_points=False)
            try:
                return await work(platform)
            finally:
                await platform.close()

        return asyncio.run(isolated())


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    database_url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, master_keys=FIRST_KEY)
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    with TestClient(create_app(Platform.create(settings, load_entry_points=False))) as client:
        yield World(Api(client), settings.data_dir, database_url)


def jpeg(shade: int = 140) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, shade, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def submitted_case_with_image(api: Api) -> dict[str, Any]:
    """The mother's case with an image, submitted and claimed; both download the image."""
    mother, clinician = api.login(MOTHER), api.login(CLINICIAN)
    case_id = draft_case(api, mother)
    payload = api.upload(case_id, jpeg(), mother)
    assert payload["errors"] == [], payload["errors"]
    attachment = payload["attachment"]
    api.ok("submitCase", {"caseId": case_id, "idempotencyKey": "s1"}, SUBMIT_FIELDS, mother)
    api.ok("claimCase", {"caseId": case_id}, "case { id }", clinician)
    by_patient = api.client.get(attachment["url"])
    (seen,) = api.gql(IMAGE_QUERY, clinician, id=case_id)["case"]["attachments"]
    by_clinician = api.client.get(seen["url"])
    assert by_patient.status_code == by_clinician.status_code == 200
    assert by_patient.content == by_clinician.content
    assert Image.open(io.BytesIO(by_patient.content)).size == (64, 48)
    return {
        "case_id": global_uuid(case_id),
        "case": case_id,
        "attachment_id": global_uuid(attachment["id"], "attachmentId"),
        "url": attachment["url"],
        "image": by_patient.content,
        "mother": mother,
        "clinician": clinician,
    }


@dataclass(frozen=True)
class Backup:
    """What a backup of the database and storage holds of one image: its row's key and its object."""

    attachment_id: uuid.UUID
    case_id: uuid.UUID
    key: WrappedKey
    sealed_object: bytes

    def open_with(self, key: bytes) -> bytes:
        return unseal(key, self.sealed_object, bound_to(self.case_id, f"image:{self.attachment_id}"))


def back_up(world: World, attachment_id: uuid.UUID) -> Backup:
    async def copy(platform: Platform) -> Backup:
        async with platform.db.transaction() as session:
            row = await session.get(models.Attachment, attachment_id)
            assert row is not None and row.key_id is not None and row.wrapped_key is not None
            stored = await platform.providers.get(STORAGE).open(row.storage_key)
            return Backup(row.id, row.case_id, WrappedKey(row.key_id, row.wrapped_key), stored)

    backup: Backup = world.run(copy)
    return backup


def remaining_data_keys(world: World) -> list[bytes]:
    """Every data key the current database still holds, unwrapped with the configured master keys: each
    binary value of every row of every table that unwraps under one of them."""

    async def collect(platform: Platform) -> list[bytes]:
        ring, keys = platform.keyring, []
        async with platform.db.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            for table in tables:
                for row in (await connection.execute(text(f'SELECT * FROM "{table}"'))).all():
                    for value in row:
                        if not isinstance(value, bytes | memoryview) or len(value) != 40:
                            continue
                        for key_id in ring.key_ids:
                            with contextlib.suppress(Tampered):
                                keys.append(ring.unwrap(WrappedKey(key_id, bytes(value))))
        return keys

    found: list[bytes] = world.run(collect)
    return found


def test_withdrawing_image_consent_shreds_the_image_in_a_copy_taken_before(world: World) -> None:
    api = world.api
    image = submitted_case_with_image(api)
    mother, clinician = image["mother"], image["clinician"]
    api.ok(
        "answerCase", {"caseId": image["case"], "body": "Svar", "outcome": "ADVICE"}, "case { id }", clinician
    )
    api.ok("closeCase", {"caseId": image["case"]}, "case { status }", mother)

    backup = back_up(world, image["attachment_id"])
    assert backup.open_with(world.run(lambda platform: _unwrap(platform, backup.key))) == image["image"]

    withdrawn = api.ok("withdrawConsent", {"purpose": "IMAGE_STORAGE"}, "erasure { images }", mother)
    assert withdrawn["erasure"]["images"] == 1
    assert api.client.get(image["url"]).status_code == 404

    remaining = remaining_data_keys(world)
    communication = world.run(lambda platform: _communication_key(platform, image["case_id"]))
    assert communication in remaining  # the rest of the communication stays readable …
    for key in remaining:  # … but no key left opens the image
        with pytest.raises(Tampered):
            backup.open_with(key)


async def _unwrap(platform: Platform, key: WrappedKey) -> bytes:
    return platform.keyring.unwrap(key)


async def _communication_key(platform: Platform, case_id: uuid.UUID) -> bytes:
    async with platform.db.transaction() as session:
        case = await session.get(models.Case, case_id)
        assert case is not None
        return content.communication_key(platform.keyring, case)


def test_rotation_rewraps_image_keys(world: World) -> None:
    api = world.api
    image = submitted_case_with_image(api)
    backup = back_up(world, image["attachment_id"])
    assert backup.key.key_id == "2026-12"

    second = generate_master_key_entry("2027-01")
    rotated = run_cli("keys", "rotate", env=world.env(f"{second},{FIRST_KEY}"))
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr

    async def key_of(platform: Platform) -> tuple[str | None, bytes | None]:
        async with platform.db.transaction() as session:
            row = await session.get(models.Attachment, image["attachment_id"])
            assert row is not None
            return row.key_id, row.wrapped_key

    key_id, wrapped = world.run(key_of, second)
    assert key_id == "2027-01" and wrapped != backup.key.wrapped

    # Only the new master key configured: the image still downloads, for the patient and the clinician.
    retired = Platform.create(world.settings(second), load_entry_points=False)
    with TestClient(create_app(retired)) as client:
        api = Api(client)
        for person in (MOTHER, CLINICIAN):
            (seen,) = api.gql(IMAGE_QUERY, api.login(person), id=image["case"])["case"]["attachments"]
            served = client.get(seen["url"])
            assert served.status_code == 200 and served.content == image["image"]


def test_an_image_sealed_with_the_case_key_still_opens_and_rekey_gives_it_its_own(world: World) -> None:
    api = world.api
    image = submitted_case_with_image(api)
    attachment_id = image["attachment_id"]

    async def make_legacy(platform: Platform) -> str:
        """As an image stored before revision 0012: sealed with the communication key, no key of its own."""
        storage = platform.providers.get(STORAGE)
        async with platform.db.transaction() as session:
            row = await session.get(models.Attachment, attachment_id)
            case = await session.get(models.Case, image["case_id"])
            assert row is not None and case is not None
            sealed = seal(
                content.communication_key(platform.keyring, case),
                image["image"],
                bound_to(case.id, f"image:{row.id}"),
            )
            await storage.put(row.storage_key, sealed, "application/octet-stream")
            await session.execute(
                update(models.Attachment)
                .where(models.Attachment.id == attachment_id)
                .values(key_id=None, wrapped_key=None)
            )
            return row.storage_key

    legacy_key = world.run(make_legacy)
    assert api.client.get(image["url"]).content == image["image"]  # read with the case's key

    rekeyed = run_cli("storage", "rekey", env=world.env())
    assert rekeyed.returncode == 0, rekeyed.stdout + rekeyed.stderr
    assert "Re-encrypted 1 image(s) of 1" in rekeyed.stdout
    again = run_cli("storage", "rekey", env=world.env())
    assert again.returncode == 0 and "Re-encrypted 0 image(s) of 0" in again.stdout

    backup = back_up(world, attachment_id)
    assert backup.key.key_id == "2026-12"

    async def old_object_gone(platform: Platform) -> bool:
        storage = platform.providers.get(STORAGE)
        async with platform.db.transaction() as session:
            keys = set((await session.scalars(select(models.Attachment.storage_key))).all())
        assert legacy_key not in keys
        try:
            await storage.open(legacy_key)
        except Exception:
            return True
        return False

    assert world.run(old_object_gone)
    for token in (image["mother"], image["clinician"]):
        (seen,) = api.gql(IMAGE_QUERY, token, id=image["case"])["case"]["attachments"]
        served = api.client.get(seen["url"])
        assert served.status_code == 200 and served.content == image["image"]


def test_a_downgrade_that_would_lose_image_keys_is_refused(world: World) -> None:
    api = world.api
    mother = api.login(MOTHER)
    case_id = draft_case(api, mother)
    assert api.upload(case_id, jpeg(), mother)["errors"] == []
    url = world.settings().resolved_database_url
    with pytest.raises(RuntimeError, match="sealed with their own key"):
        downgrade(url, "0011")

    async def kept(platform: Platform) -> tuple[str | None, int]:
        # Read directly: the revisions above 0012 are undone, and this version's code needs them.
        async with platform.db.engine.connect() as connection:
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            keys = (
                await connection.execute(text("SELECT count(*) FROM attachment WHERE key_id IS NOT NULL"))
            ).scalar()
        return version, int(keys or 0)

    version, keys = world.run(kept)
    # PostgreSQL undoes the whole downgrade (its DDL is transactional); SQLite stops at the refusal.
    assert version is not None and version >= "0012" and keys == 1  # the image's own key still there
