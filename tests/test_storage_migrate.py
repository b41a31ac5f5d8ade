"""``legetime storage migrate --from local --to s3``, run as an operator runs it (a subprocess), against the
local S3 (moto, tests/fakes/s3.py): every live image copied and verified, a second run skipping them, an
interrupted run finishing, failures counted with exit code 1, the source deleted only when asked and only
once the platform reads from the target, and the platform serving the images from S3 afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import delete, select, update
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.db import models
from legetime.core.platform.runtime import Platform
from legetime.schema.app import create_app
from legetime.schema.mutation import global_uuid
from tests.api import Api
from tests.cli import run_cli
from tests.conftest import seed_demo
from tests.fakes.s3 import MotoS3, shared_server
from tests.migrated import upgrade
from tests.test_case_rules import draft_case, tiny_png

MOTHER = DEMO_PEOPLE[2].national_id
IMAGES = 3


@dataclass
class World:
    data_dir: Path
    server: MotoS3
    bucket: str
    case_id: str
    originals: list[bytes]

    def env(self, **more: str) -> dict[str, str]:
        return {"LEGETIME_DATA_DIR": str(self.data_dir)} | self.server.environment(self.bucket) | more

    def migrate(self, *options: str, **env: str) -> Any:
        return run_cli("storage", "migrate", "--from", "local", "--to", "s3", *options, env=self.env(**env))

    def settings(self, storage: str = "local") -> Settings:
        return Settings(data_dir=self.data_dir, storage_provider=storage)

    def rows(self) -> list[models.Attachment]:
        return list(query(self.settings(), lambda session: session.scalars(select(models.Attachment))))

    def local_files(self) -> list[Path]:
        return sorted(path for path in (self.data_dir / "objects").rglob("*.sealed"))


def query(settings: Settings, work: Any) -> Any:
    async def run() -> Any:
        platform = Platform.create(settings, load_entry_points=False)
        try:
            async with platform.db.transaction() as session:
                result = await work(session)
                return result.all() if getattr(result, "returns_rows", True) else None
        finally:
            await platform.close()

    return asyncio.run(run())


def counts(output: str) -> dict[str, int]:
    """The summary table's rows: what → count."""
    found = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃|").split("│")]
        if len(cells) == 2 and cells[1].isdigit():
            found[cells[0]] = int(cells[1])
    return found


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade * 40, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The embedded platform on local storage with a few images attached (and one erased), and an empty
    bucket on the local S3."""
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    originals = []
    with TestClient(create_app(Platform.create(settings, load_entry_points=False))) as client:
        api = Api(client)
        mother = api.login(MOTHER)
        case_id = draft_case(api, mother)
        for shade in range(IMAGES):
            payload = api.upload(case_id, png(shade), mother)
            assert payload["errors"] == []
            originals.append(client.get(payload["attachment"]["url"]).content)
        erased = api.upload(case_id, tiny_png(), mother)["attachment"]["id"]
    server = shared_server()
    world = World(data_dir, server, server.create_bucket(), case_id, originals)
    # An erased image has no row (its file may be left, as a failed delete leaves it): it must not move.
    query(
        settings,
        lambda session: session.execute(
            delete(models.Attachment).where(models.Attachment.id == global_uuid(erased, "attachmentId"))
        ),
    )
    assert len(world.rows()) == IMAGES
    yield world
    server.remove_bucket(world.bucket)


def test_migrate_copies_verifies_resumes_and_deletes_the_source_only_when_asked(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, bucket = world.server, world.bucket
    rows = world.rows()
    assert {row.storage_provider for row in rows} == {"local"}

    first = world.migrate()
    assert first.returncode == 0, first.stdout + first.stderr
    assert counts(first.stdout) == {"copied": IMAGES, "skipped": 0, "failed": 0}, first.stdout
    assert sorted(server.keys(bucket)) == sorted(row.storage_key for row in rows)  # the erased one stayed
    for row in rows:  # byte for byte what the local provider holds (sealed: ciphertext)
        stored = server.client().get_object(Bucket=bucket, Key=row.storage_key)["Body"].read()
        local = (world.data_dir / "objects" / row.storage_key).read_bytes()
        assert local.endswith(stored) and hashlib.sha256(stored).hexdigest() != row.sha256
    assert {row.storage_provider for row in world.rows()} == {"s3"}
    assert len(world.local_files()) == IMAGES + 1  # the source is kept

    second = world.migrate()
    assert second.returncode == 0 and counts(second.stdout) == {"copied": 0, "skipped": IMAGES, "failed": 0}

    # An interrupted run: one copy made but not recorded, one not made at all.
    made, lost = rows[0], rows[1]
    server.client().delete_object(Bucket=bucket, Key=lost.storage_key)
    query(
        world.settings(),
        lambda s: s.execute(
            update(models.Attachment)
            .where(models.Attachment.id.in_([made.id, lost.id]))
            .values(storage_provider="local")
        ),
    )
    resumed = world.migrate()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert counts(resumed.stdout) == {"copied": 1, "skipped": IMAGES - 1, "failed": 0}
    assert {row.storage_provider for row in world.rows()} == {"s3"}

    refused = world.migrate("--delete-source")  # the platform still reads from local
    assert refused.returncode == 2 and "LEGETIME_STORAGE_PROVIDER" in refused.stderr
    assert len(world.local_files()) == IMAGES + 1

    deleted = world.migrate("--delete-source", LEGETIME_STORAGE_PROVIDER="s3")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert counts(deleted.stdout) == {
        "copied": 0,
        "skipped": IMAGES,
        "failed": 0,
        "deleted from the source": IMAGES,
    }
    assert len(world.local_files()) == 1  # only the erased image's leftover, which no row names

    # The platform on S3 serves every image, opened, as it did from local disk.
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    platform = Platform.create(world.settings("s3"), load_entry_points=False)
    with TestClient(create_app(platform)) as client:
        api = Api(client)
        mother = api.login(MOTHER)
        case = api.gql("query($id: ID!) { case(id: $id) { attachments { url } } }", mother, id=world.case_id)[
            "case"
        ]
        served = [client.get(attachment["url"]) for attachment in case["attachments"]]
        assert [response.status_code for response in served] == [200] * IMAGES
        assert sorted(response.content for response in served) == sorted(world.originals)


def test_a_missing_source_object_fails_the_run_with_exit_code_1(world: World) -> None:
    gone = world.rows()[0]
    (world.data_dir / "objects" / gone.storage_key).unlink()
    result = world.migrate()
    assert result.returncode == 1
    assert counts(result.stdout) == {"copied": IMAGES - 1, "skipped": 0, "failed": 1}
    assert f"attachment {gone.id} (missing_in_source)" in result.stderr
    assert "run the command again" in result.stderr
    again = world.migrate()  # still missing: still a failure; the others are skipped
    assert again.returncode == 1 and counts(again.stdout) == {"copied": 0, "skipped": IMAGES - 1, "failed": 1}


def test_a_missing_bucket_stops_at_once(world: World) -> None:
    result = world.migrate(LEGETIME_STORAGE_S3_BUCKET=f"legetime-missing-{uuid.uuid4().hex[:8]}")
    assert result.returncode == 1
    assert "Stopped" in result.stderr and "NoSuchBucket" in result.stderr
    assert {row.storage_provider for row in world.rows()} == {"local"}


def test_unknown_providers_and_the_same_provider_twice_are_refused(world: World) -> None:
    unknown = run_cli("storage", "migrate", "--from", "local", "--to", "nowhere", env=world.env())
    assert unknown.returncode == 2 and "unknown storage provider 'nowhere'" in unknown.stderr
    same = run_cli("storage", "migrate", "--from", "local", "--to", "local", env=world.env())
    assert same.returncode == 2 and "another provider" in same.stderr
