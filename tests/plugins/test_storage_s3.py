"""The ``s3`` storage plugin against a local S3 (moto's server with IAM authentication on, tests/fakes/s3.py):
settings, multipart uploads, server-side encryption as S3 reports it, the errors of a missing bucket,
refused credentials and permissions, an outage and throttling, the start-up check, and deletion honoured by
retention and erasure. The storage contract runs against it too (tests/contracts/test_storage_contract.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError as SettingsError
from sqlalchemy import select
from starlette.responses import Response
from starlette.testclient import TestClient

from legetime.core.demo import DEMO_PEOPLE
from legetime.core.platform.config import Settings
from legetime.core.platform.db import models
from legetime.core.platform.errors import (
    ConfigError,
    ProviderError,
    ProviderUnavailable,
    StorageNotFound,
    ValidationError,
)
from legetime.core.platform.jobs.runner import run_job
from legetime.core.platform.runtime import Platform
from legetime.core.protection.retention import DELETE_OBJECTS_JOB, run_retention
from legetime.plugins.storage.s3 import S3StorageProvider, S3StorageSettings, translate
from legetime.schema.app import create_app
from tests.api import Api
from tests.conftest import seed_demo
from tests.fakes import s3 as s3_fake
from tests.fakes.s3 import MotoS3
from tests.fakes.server import serve
from tests.migrated import upgrade
from tests.test_case_rules import draft_case, tiny_png

MIB = 1024 * 1024
MOTHER = DEMO_PEOPLE[2].national_id
OPERATOR = DEMO_PEOPLE[1].national_id


s3_server, s3_bucket = s3_fake.s3_server, s3_fake.s3_bucket  # the local S3's fixtures


@pytest.fixture
def server(s3_server: MotoS3) -> MotoS3:
    return s3_server


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


def provider(server: MotoS3, bucket: str, **changes: Any) -> S3StorageProvider:
    return S3StorageProvider(S3StorageSettings(**(server.provider_settings(bucket) | changes)))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def image(size: int) -> bytes:
    """Incompressible bytes of ``size`` (an image is already compressed; and sealed, it is random)."""
    return hashlib.shake_256(str(size).encode()).digest(size)


# --- settings ---------------------------------------------------------------------------------------------


def test_settings_from_the_environment_with_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGETIME_STORAGE_S3_BUCKET", "legetime-images")
    monkeypatch.setenv("LEGETIME_STORAGE_S3_PREFIX", "/prod/images")
    monkeypatch.setenv("LEGETIME_STORAGE_S3_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("LEGETIME_STORAGE_S3_SECRET_ACCESS_KEY", "very-secret-key")
    monkeypatch.setenv("LEGETIME_STORAGE_S3_SESSION_TOKEN", "very-secret-token")
    settings = S3StorageSettings()
    assert settings.bucket == "legetime-images" and settings.prefix == "prod/images/"
    shown = repr(settings) + str(settings.model_dump())
    assert "very-secret-key" not in shown and "very-secret-token" not in shown
    for name, field in S3StorageSettings.model_fields.items():
        assert field.description, f"{name} needs a description"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"access_key_id": "AKIA"}, "SECRET_ACCESS_KEY"),
        ({"secret_access_key": "s"}, "SECRET_ACCESS_KEY"),
        ({"kms_key_id": "alias/x"}, "KMS_KEY_ID"),
        ({"endpoint_url": "http://minio.example.no"}, "https"),
        ({"prefix": "a/../b"}, "prefix"),
        ({"bucket": "a"}, "bucket"),
        ({"multipart_threshold_bytes": MIB}, "multipart_threshold_bytes"),
        ({"multipart_chunk_bytes": 16 * MIB}, "MULTIPART_CHUNK_BYTES"),
    ],
)
def test_inconsistent_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        S3StorageSettings(**({"bucket": "legetime-images"} | changes))


def test_the_platform_offers_it_and_loading_it_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from legetime.core.platform.runtime import Platform; "
        "from legetime.core.platform.config import Settings; "
        "p = Platform.create(Settings(), load_entry_points=False); "
        "print('s3' in [s.name for s in p.providers.offered], 'boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "False"], out.stderr


# --- objects ---------------------------------------------------------------------------------------------


def test_objects_live_under_the_prefix(server: MotoS3, bucket: str) -> None:
    storage = provider(server, bucket, prefix="legetime/test")
    stored = run(storage.put("cases/c1/a.sealed", b"\x00ciphertext", "application/octet-stream"))
    assert stored.sha256 == hashlib.sha256(b"\x00ciphertext").hexdigest()
    assert server.keys(bucket) == ["legetime/test/cases/c1/a.sealed"]
    head = server.head(bucket, "legetime/test/cases/c1/a.sealed")
    assert head["ContentType"] == "application/octet-stream" and head["ContentLength"] == 11
    assert run(storage.open("cases/c1/a.sealed")) == b"\x00ciphertext"


def test_a_large_image_goes_up_in_parts(server: MotoS3, bucket: str) -> None:
    storage = provider(
        server,
        bucket,
        multipart_threshold_bytes=5 * MIB,
        multipart_chunk_bytes=5 * MIB,
        server_side_encryption="AES256",
    )
    data = image(12 * MIB + 123)
    stored = run(storage.put("cases/c1/big.sealed", data, "application/octet-stream"))
    assert stored.size == len(data)
    head = server.head(bucket, "cases/c1/big.sealed")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "application/octet-stream"
    assert run(storage.open("cases/c1/big.sealed")) == data
    client = server.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # none left open


def test_a_small_image_goes_up_in_one_put(server: MotoS3, bucket: str) -> None:
    storage = provider(server, bucket, multipart_threshold_bytes=5 * MIB, multipart_chunk_bytes=5 * MIB)
    run(storage.put("small", image(5 * MIB - 1), "image/png"))
    assert "-" not in server.head(bucket, "small")["ETag"]


@pytest.mark.parametrize("size", [100, 6 * MIB], ids=["single", "multipart"])
def test_server_side_encryption_is_asked_for_and_reported(server: MotoS3, bucket: str, size: int) -> None:
    threshold = {"multipart_threshold_bytes": 5 * MIB, "multipart_chunk_bytes": 5 * MIB}
    key_arn = "arn:aws:kms:eu-north-1:123456789012:key/0b4e7a5c-1b2f-4a4b-9a63-2c2b5f1e2d3a"
    s3 = provider(server, bucket, server_side_encryption="AES256", **threshold)
    kms = provider(server, bucket, server_side_encryption="aws:kms", kms_key_id=key_arn, **threshold)
    plain = provider(server, bucket, **threshold)
    run(s3.put("sse-s3", image(size), "image/png"))
    run(kms.put("sse-kms", image(size), "image/png"))
    run(plain.put("bucket-default", image(size), "image/png"))
    assert server.head(bucket, "sse-s3")["ServerSideEncryption"] == "AES256"
    head = server.head(bucket, "sse-kms")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    assert "ServerSideEncryption" not in server.head(bucket, "bucket-default")  # none asked for


def test_a_deleted_object_is_gone_and_deleting_again_is_fine(server: MotoS3, bucket: str) -> None:
    storage = provider(server, bucket)
    run(storage.put("cases/c1/a.sealed", b"x", "application/octet-stream"))
    url = run(storage.url("cases/c1/a.sealed", timedelta(minutes=5)))
    run(storage.delete("cases/c1/a.sealed"))
    run(storage.delete("cases/c1/a.sealed"))
    assert server.keys(bucket) == []
    with pytest.raises(StorageNotFound):
        run(storage.open("cases/c1/a.sealed"))
    assert server.browser_get(url).status == 404


def test_presigned_urls_are_short_lived_and_not_cached(server: MotoS3, bucket: str) -> None:
    storage = provider(server, bucket, url_max_seconds=600)
    run(storage.put("img", b"sealed", "application/octet-stream"))
    url = run(storage.url("img", timedelta(minutes=10)))
    assert "X-Amz-Expires=600" in url and "X-Amz-Signature=" in url
    got = server.browser_get(url)
    assert (got.status, got.body, got.headers["cache-control"]) == (200, b"sealed", "private, no-store")
    assert server.browser_get(url, datetime.now(UTC) + timedelta(minutes=11)).status == 403
    with pytest.raises(ValidationError) as too_long:
        run(storage.url("img", timedelta(minutes=11)))
    assert too_long.value.field == "expires"


# --- errors ----------------------------------------------------------------------------------------------


def test_a_missing_bucket_is_a_configuration_error(server: MotoS3) -> None:
    storage = provider(server, "legetime-no-such-bucket")
    for attempt in (
        lambda: storage.put("a", b"x", "image/png"),
        lambda: storage.open("a"),
        lambda: storage.delete("a"),
    ):
        with pytest.raises(ProviderError) as info:
            run(attempt())
        assert not isinstance(info.value, ProviderUnavailable | StorageNotFound)
        assert "NoSuchBucket" in info.value.message and not info.value.retryable
    with pytest.raises(ConfigError, match=r"LEGETIME_STORAGE_S3_BUCKET.*does not exist"):
        run(storage.check_bucket())


def test_wrong_credentials_are_refused_as_s3_refuses_them(server: MotoS3, bucket: str) -> None:
    unknown = provider(server, bucket, access_key_id="AKIAUNKNOWN000000000", secret_access_key="x")
    wrong_secret = provider(server, bucket, secret_access_key="not-the-secret")
    big = {"multipart_threshold_bytes": 5 * MIB, "multipart_chunk_bytes": 5 * MIB}
    wrong_multipart = provider(server, bucket, secret_access_key="not-the-secret", **big)
    for storage, code in ((unknown, "InvalidAccessKeyId"), (wrong_secret, "SignatureDoesNotMatch")):
        with pytest.raises(ProviderError) as info:
            run(storage.put("a", b"x", "image/png"))
        assert code in info.value.message and not isinstance(info.value, ProviderUnavailable)
        with pytest.raises(ProviderError, match=code):
            run(storage.open("a"))
        with pytest.raises(ConfigError, match="LEGETIME_STORAGE_S3_ACCESS_KEY_ID"):
            run(storage.check_bucket())
    with pytest.raises(ProviderError, match="SignatureDoesNotMatch"):
        run(wrong_multipart.put("big", image(6 * MIB), "image/png"))
    assert server.keys(bucket) == []


def test_missing_permissions_are_access_denied(server: MotoS3, bucket: str) -> None:
    reader = server.user(["s3:GetObject", "s3:ListBucket"])
    storage = provider(
        server, bucket, access_key_id=reader.access_key_id, secret_access_key=reader.secret_access_key
    )
    with pytest.raises(ProviderError, match="AccessDenied") as info:
        run(storage.put("a", b"x", "image/png"))
    assert not info.value.retryable
    with pytest.raises(ProviderError, match="AccessDenied"):
        run(storage.delete("a"))


def test_no_credentials_at_all_is_a_configuration_error(
    server: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    settings = server.provider_settings(bucket) | {"access_key_id": None, "secret_access_key": None}
    storage = S3StorageProvider(S3StorageSettings(**settings))
    storage_session_isolated(monkeypatch)
    with pytest.raises(ProviderError, match="S3-nøkler") as info:
        run(storage.put("a", b"x", "image/png"))
    assert not isinstance(info.value, ProviderUnavailable)


def storage_session_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh boto3 session for the provider, so the environment above is what it reads."""
    from legetime.plugins.storage import s3

    monkeypatch.setattr(s3, "_session", None)


def test_an_unreachable_s3_is_unavailable(server: MotoS3, bucket: str) -> None:
    from tests.cli import free_port

    storage = provider(server, bucket, endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=2)
    for attempt in (
        lambda: storage.put("a", b"x", "image/png"),
        lambda: storage.open("a"),
        lambda: storage.delete("a"),
    ):
        with pytest.raises(ProviderUnavailable) as info:
            run(attempt())
        assert info.value.retryable
    run(storage.check_bucket())  # start-up goes on: a passing outage only logs a warning


@pytest.mark.parametrize(
    ("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (503, "ServiceUnavailable")]
)
def test_throttling_and_server_errors_are_unavailable_after_the_retries(status: int, code: str) -> None:
    calls: list[str] = []
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>m</Message></Error>'

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Every request answered with the error, as S3 does when it throttles or fails."""
        assert scope["type"] == "http"
        calls.append(scope["method"])
        while (await receive()).get("more_body"):
            pass
        response = Response(body, status_code=status, media_type="application/xml")
        await response(scope, receive, send)

    with serve(app) as url:
        storage = S3StorageProvider(
            S3StorageSettings(
                bucket="legetime-images",
                endpoint_url=url,
                region="eu-north-1",
                access_key_id="AKIA",
                secret_access_key="s",
                addressing_style="path",
                max_attempts=2,
            )
        )
        with pytest.raises(ProviderUnavailable):
            run(storage.put("a", b"x", "image/png"))
        with pytest.raises(ProviderUnavailable):
            run(storage.open("a"))
    assert calls == ["PUT", "PUT", "GET", "GET"]  # botocore retried each once (max_attempts=2)


def test_translate_maps_every_kind_of_s3_error() -> None:
    from botocore.exceptions import ClientError, ReadTimeoutError

    def error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
        )

    assert type(translate(error("NoSuchKey", 404), "get")) is StorageNotFound
    assert type(translate(error("SlowDown", 503), "put")) is ProviderUnavailable
    assert type(translate(error("InternalError", 500), "put")) is ProviderUnavailable
    assert type(translate(error("Whatever", 502), "put")) is ProviderUnavailable
    assert type(translate(ReadTimeoutError(endpoint_url="http://x"), "get")) is ProviderUnavailable
    for code, status, hint in [
        ("NoSuchBucket", 404, "BUCKET"),
        ("AccessDenied", 403, "IAM"),
        ("InvalidAccessKeyId", 403, "nøklene"),
        ("PermanentRedirect", 301, "REGION"),
        ("KMS.NotFoundException", 400, "KMS_KEY_ID"),
    ]:
        translated = translate(error(code, status), "put")
        assert type(translated) is ProviderError and hint in str(translated) and code in str(translated)


def test_logs_carry_codes_and_ids_but_never_keys_or_content(server: MotoS3) -> None:
    storage = provider(server, "legetime-no-such-bucket")
    key = "cases/4f1c2a/secret-patient-image.sealed"
    with structlog.testing.capture_logs() as logs, pytest.raises(ProviderError):
        run(storage.put(key, b"PLAINTEXT-SHOULD-NOT-BE-LOGGED", "image/png"))
    assert logs and logs[0]["s3_code"] == "NoSuchBucket" and logs[0]["request_id"]
    flat = str(logs)
    for secret in ("secret-patient-image", "PLAINTEXT", server.admin.secret_access_key):
        assert secret not in flat


# --- start-up ------------------------------------------------------------------------------------------


def s3_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: MotoS3, bucket: str, **changes: str
) -> Platform:
    for name, value in (server.environment(bucket) | changes).items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path / "data", storage_provider="s3")
    upgrade(settings.resolved_database_url)
    seed_demo(settings)
    return Platform.create(settings, load_entry_points=False)


def test_start_up_refuses_a_missing_bucket_and_wrong_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: MotoS3, bucket: str
) -> None:
    run(s3_platform(tmp_path, monkeypatch, server, bucket).start())  # a good bucket starts
    missing = s3_platform(tmp_path / "2", monkeypatch, server, "legetime-missing")
    with pytest.raises(ConfigError, match="does not exist"):
        run(missing.start())
    refused = s3_platform(
        tmp_path / "3", monkeypatch, server, bucket, LEGETIME_STORAGE_S3_SECRET_ACCESS_KEY="x"
    )
    with pytest.raises(ConfigError, match="refused the credentials"):
        run(refused.start())
    unchecked = s3_platform(
        tmp_path / "4",
        monkeypatch,
        server,
        "legetime-missing",
        LEGETIME_STORAGE_S3_CHECK_BUCKET_ON_STARTUP="false",
    )
    run(unchecked.start())


# --- deletion honoured by retention and erasure -----------------------------------------------------------


def outbox_jobs(platform: Platform, name: str) -> list[models.OutboxJob]:
    async def read() -> list[models.OutboxJob]:
        fresh = Platform.create(platform.settings, load_entry_points=False)
        try:
            async with fresh.db.transaction() as session:
                rows = await session.scalars(select(models.OutboxJob).where(models.OutboxJob.name == name))
                return list(rows.all())
        finally:
            await fresh.close()

    return list(run(read()))


def test_retention_deletes_the_objects_and_retries_a_delete_s3_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: MotoS3, bucket: str
) -> None:
    """A purge whose DeleteObject fails leaves a ``storage.delete`` job with exactly the keys that failed;
    once S3 allows it, the job deletes them. A purge that deleted everything leaves its job done."""
    # AWS authorizes HeadBucket by s3:ListBucket; moto by an "s3:HeadBucket" of its own: both are given.
    allowed_actions = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:HeadBucket"]
    limited = server.user(allowed_actions)  # no s3:DeleteObject
    platform = s3_platform(
        tmp_path,
        monkeypatch,
        server,
        bucket,
        LEGETIME_STORAGE_S3_ACCESS_KEY_ID=limited.access_key_id,
        LEGETIME_STORAGE_S3_SECRET_ACCESS_KEY=limited.secret_access_key,
    )
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        api = Api(client)
        mother = api.login(MOTHER)
        refused, allowed = draft_case(api, mother), draft_case(api, mother)
        assert api.upload(refused, tiny_png(), mother)["errors"] == []
        assert len(server.keys(bucket)) == 1
        api.ok("cancelCase", {"caseId": refused}, "case { status }", mother)
    later = datetime.now(UTC) + timedelta(days=3650)

    async def purge(settings: Settings) -> Any:
        fresh = Platform.create(settings, load_entry_points=False)
        try:
            return await run_retention(fresh, actor=_system(), trigger="test", now=later)
        finally:
            await fresh.close()

    summary = run(purge(platform.settings))
    assert (summary.cases, summary.images, summary.storage_failures) == (1, 1, 1)
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:  # operators see it
        api = Api(client)
        runs = api.gql("{ retentionRuns(first: 1) { images storageFailures } }", api.login(OPERATOR))
        assert runs["retentionRuns"] == [{"images": 1, "storageFailures": 1}]
    [job] = outbox_jobs(platform, DELETE_OBJECTS_JOB)
    assert job.status is models.OutboxStatus.PENDING and job.payload == {"keys": server.keys(bucket)}
    assert job.available_at >= job.created_at + timedelta(minutes=4)  # a retry after a delay, not at once

    server.set_actions(limited, [*allowed_actions, "s3:DeleteObject"])

    async def retry() -> None:
        fresh = Platform.create(platform.settings, load_entry_points=False)
        try:
            await run_job(fresh, fresh.db, str(job.id))
        finally:
            await fresh.close()

    run(retry())
    assert server.keys(bucket) == []
    [job] = outbox_jobs(platform, DELETE_OBJECTS_JOB)
    assert job.status is models.OutboxStatus.DONE

    # Now deletes succeed at once: the next purge's job is done without ever running.
    with TestClient(create_app(platform, run_jobs_in_process=False)) as client:
        api = Api(client)
        mother = api.login(MOTHER)
        assert api.upload(allowed, tiny_png(), mother)["errors"] == []
        api.ok("cancelCase", {"caseId": allowed}, "case { status }", mother)
    summary = run(purge(platform.settings))
    assert (summary.images, summary.storage_failures) == (1, 0) and server.keys(bucket) == []
    jobs = outbox_jobs(platform, DELETE_OBJECTS_JOB)
    assert [j.status for j in jobs] == [models.OutboxStatus.DONE] * 2 and all(j.attempts <= 1 for j in jobs)


def _system() -> Any:
    from legetime.core.identity.actors import SYSTEM

    return SYSTEM


def test_withdrawing_image_consent_deletes_the_object_from_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: MotoS3, bucket: str
) -> None:
    platform = s3_platform(tmp_path, monkeypatch, server, bucket)
    with TestClient(create_app(platform, run_jobs_in_process=True)) as client:
        api = Api(client)
        mother = api.login(MOTHER)
        case_id = draft_case(api, mother)
        attachment = api.upload(case_id, tiny_png(), mother)["attachment"]
        [key] = server.keys(bucket)
        assert key.startswith(f"cases/{uuid.UUID(hex=_case_hex(case_id))}/")
        assert api.client.get(attachment["url"]).status_code == 200  # served by the platform, opened
        api.ok(
            "withdrawConsent", {"purpose": "IMAGE_STORAGE", "caseId": case_id}, "consent { granted }", mother
        )
        api.wait_for(lambda: server.keys(bucket) == [], "the object deleted from S3")
        assert api.client.get(attachment["url"]).status_code == 404


def _case_hex(global_id: str) -> str:
    from legetime.schema.mutation import global_uuid

    return global_uuid(global_id).hex
