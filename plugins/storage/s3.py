"""Images in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Cloudflare R2 …) through boto3.

One object per key, under an optional prefix of the bucket. The core seals every image with the case's
communication key before it gets here, so the bucket only ever holds ciphertext; server-side encryption
(SSE-S3 or SSE-KMS) is a second layer on top, not the protection itself.

boto3 is blocking: every call runs in a worker thread (``asyncio.to_thread``). It is imported when the first
client is made, not when the plugin is loaded, so ``legetime --help`` and the quick commands stay fast.

Errors become the SDK's: a missing object is ``StorageNotFound``; a missing bucket, refused credentials or
permissions, a wrong region or KMS key are ``ProviderError`` (configuration: retrying does not help);
network failures, timeouts, 5xx and throttling (``SlowDown``) are ``ProviderUnavailable`` (after botocore's
own retries). Logs carry the operation, the S3 error code, the HTTP status and S3's request id, never the
key, the bytes or the settings' secrets.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import re
import threading
from datetime import timedelta
from typing import Any, Literal

import structlog
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from legetime.sdk import (
    STORAGE,
    Capability,
    ConfigError,
    HttpsUrl,
    Platform,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    StorageNotFound,
    StoredObject,
    ValidationError,
    hookimpl,
)

log = structlog.get_logger(__name__)

NAME = "s3"
ENV_PREFIX = "LEGETIME_STORAGE_S3_"
MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3's smallest part (all but the last) of a multipart upload
MAX_PART = 5 * 1024 * MIB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs live at most 7 days
# Same key rules as the local provider (so a migration never meets a key one accepts and the other not):
# [A-Za-z0-9/_.-], no empty segment, none starting with a dot (no "." or ".."). fullmatch, not "$".
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}")
PREFIX_PATTERN = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]*/)*")
CONTENT_TYPE_PATTERN = re.compile(
    r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*( ?; ?[\w.+-]+=[\w.+\"-]+)*", re.ASCII
)
BUCKET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
UNAVAILABLE = "Bildelagringen svarer ikke akkurat nå. Prøv igjen om litt."

# S3 error codes (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html) by what they mean
# here. HEAD answers have no body, so there the code is the HTTP status ("404", "403", "301").
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
NO_BUCKET_CODES = frozenset({"NoSuchBucket"})
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidSecurity",
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "403",
    }
)
REGION_CODES = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "301"}
)
UNAVAILABLE_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "OperationAborted",
        "503",
        "500",
    }
)


class S3StorageSettings(ProviderSettings):
    """Settings of S3-compatible storage (``LEGETIME_STORAGE_S3_*``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    bucket: str = Field(description="The bucket of the images; it must exist (it is not created).")
    prefix: str = Field(
        default="",
        description="Key prefix inside the bucket, e.g. 'legetime/prod/' (a '/' is added); empty: the root.",
    )
    region: str | None = Field(
        default=None,
        description="The bucket's region, e.g. eu-north-1 (R2: auto; MinIO: us-east-1 unless configured). "
        "Default: the AWS default chain (AWS_REGION …), else us-east-1.",
    )
    endpoint_url: HttpsUrl | None = Field(
        default=None,
        description="The S3 API of a non-AWS service, e.g. https://minio.example.no or "
        "https://<account>.r2.cloudflarestorage.com; default: AWS S3. https only (http on localhost).",
    )
    access_key_id: str | None = Field(
        default=None,
        description="Access key ID, with secret_access_key. Unset: the default AWS credential chain "
        "(AWS_* variables, shared config, web identity, ECS/EC2 instance role).",
    )
    secret_access_key: SecretStr | None = Field(
        default=None, description="Secret access key that goes with access_key_id."
    )
    session_token: SecretStr | None = Field(
        default=None, description="Session token of temporary credentials (rarely set by hand)."
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="How the bucket is addressed: virtual (bucket.host), path (host/bucket; MinIO and "
        "most self-hosted services) or auto (botocore decides).",
    )
    server_side_encryption: Literal["none", "AES256", "aws:kms"] = Field(
        default="none",
        description="Server-side encryption asked for on every upload, on top of the platform's own: "
        "AES256 (SSE-S3), aws:kms (SSE-KMS) or none (the bucket's default encryption applies; AWS S3 "
        "encrypts new objects with SSE-S3 by default).",
    )
    kms_key_id: str | None = Field(
        default=None,
        description="KMS key (ID, ARN or alias ARN) for aws:kms; unset: the bucket's default KMS key, "
        "else the AWS managed aws/s3 key.",
    )
    connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout to establish a connection (per attempt)."
    )
    read_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout waiting for data on a connection (per attempt)."
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts per request, the first included (botocore standard retries with "
        "backoff: network errors, 5xx, SlowDown).",
    )
    multipart_threshold_bytes: int = Field(
        default=8 * MIB,
        ge=MIN_PART,
        description="Objects of at least this size are uploaded in parts (multipart upload).",
    )
    multipart_chunk_bytes: int = Field(
        default=8 * MIB, ge=MIN_PART, le=MAX_PART, description="Size of each part of a multipart upload."
    )
    multipart_concurrency: int = Field(
        default=4, ge=1, le=32, description="Parts of one multipart upload sent at once."
    )
    url_max_seconds: int = Field(
        default=900,
        ge=1,
        le=MAX_PRESIGN_SECONDS,
        description="Longest lifetime of a presigned download URL; asking for longer is refused.",
    )
    checksums: Literal["when_supported", "when_required"] = Field(
        default="when_supported",
        description="When botocore adds integrity checksums to uploads: when_supported (default) or "
        "when_required (for older MinIO/Ceph that refuse the aws-chunked trailer).",
    )
    check_bucket_on_startup: bool = Field(
        default=True,
        description="HeadBucket when the API or a worker starts; refuse to start if the bucket is missing "
        "or the credentials are refused (an unreachable S3 only logs a warning).",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not BUCKET_PATTERN.fullmatch(value):
            raise ValueError(
                "must be a bucket name: 3-255 of [A-Za-z0-9._-], starting with a letter or digit"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        value = f"{value}/" if value else ""
        if len(value) > 512 or not PREFIX_PATTERN.fullmatch(value) or "/." in f"/{value}":
            raise ValueError("must be folders of [A-Za-z0-9_.-] separated by '/', none starting with a dot")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> S3StorageSettings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                f"{ENV_PREFIX}SECRET_ACCESS_KEY: give both access_key_id and secret_access_key, or neither "
                "(then the default AWS credential chain is used)"
            )
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError(f"{ENV_PREFIX}SESSION_TOKEN: needs access_key_id and secret_access_key")
        if self.kms_key_id is not None and self.server_side_encryption != "aws:kms":
            raise ValueError(f"{ENV_PREFIX}KMS_KEY_ID: only used with server_side_encryption=aws:kms")
        if self.multipart_chunk_bytes > self.multipart_threshold_bytes:
            raise ValueError(f"{ENV_PREFIX}MULTIPART_CHUNK_BYTES: must not exceed multipart_threshold_bytes")
        return self


def _validate_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key) or any(not part or part.startswith(".") for part in key.split("/")):
        raise ValidationError(
            "Invalid storage key: only [A-Za-z0-9/_.-], no empty segments, none starting with a dot.",
            field="key",
        )
    return key


def _s3_error(exc: BaseException) -> tuple[str, int | None, str | None] | None:
    """(code, HTTP status, request id) of a botocore ClientError, or None for anything else."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return None
    metadata = response.get("ResponseMetadata") or {}
    code = str(response["Error"].get("Code") or metadata.get("HTTPStatusCode") or "Unknown")
    return code, metadata.get("HTTPStatusCode"), metadata.get("RequestId")


def translate(exc: BaseException, operation: str) -> Exception:
    """The SDK error for what boto3 raised during ``operation`` (logged with codes only)."""
    from botocore.exceptions import (
        BotoCoreError,
        CredentialRetrievalError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    details = _s3_error(exc)
    if details is None:
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            log.error("storage_s3.no_credentials", operation=operation, error=type(exc).__name__)
            return ProviderError(
                "Bildelagringen er feilkonfigurert: fant ingen S3-nøkler (LEGETIME_STORAGE_S3_ACCESS_KEY_ID "
                "eller AWS-kjeden)."
            )
        if isinstance(exc, NoRegionError):
            return ProviderError("Bildelagringen er feilkonfigurert: S3-regionen mangler.")
        if isinstance(exc, BotoCoreError | OSError):  # connection refused, DNS, timeouts, a cut stream
            log.warning("storage_s3.unavailable", operation=operation, error=type(exc).__name__)
            return ProviderUnavailable(UNAVAILABLE)
        log.error("storage_s3.unexpected", operation=operation, error=type(exc).__name__)
        return ProviderError(f"Bildelagringen feilet uventet ({type(exc).__name__}).")
    code, status, request_id = details
    fields = {"operation": operation, "s3_code": code, "status": status, "request_id": request_id}
    if code in NOT_FOUND_CODES:
        return StorageNotFound("Fant ikke det lagrede objektet.", field="key")
    if code in UNAVAILABLE_CODES or (status is not None and status >= 500):
        log.warning("storage_s3.unavailable", **fields)
        return ProviderUnavailable(UNAVAILABLE)
    log.error("storage_s3.refused", **fields)
    if code in NO_BUCKET_CODES:
        why = "bøtta finnes ikke (LEGETIME_STORAGE_S3_BUCKET)"
    elif code in CREDENTIAL_CODES:
        why = "S3 avviste nøklene eller tilgangen (nøkler, IAM-policy)"
    elif code in REGION_CODES:
        why = "feil region eller adresse (LEGETIME_STORAGE_S3_REGION / ENDPOINT_URL)"
    elif code.startswith("KMS."):
        why = "KMS-nøkkelen kan ikke brukes (LEGETIME_STORAGE_S3_KMS_KEY_ID)"
    else:
        why = "S3 avviste forespørselen"
    return ProviderError(f"Bildelagringen er feilkonfigurert: {why} (S3 {code}).")


_session: Any = None
_session_lock = threading.Lock()


class S3StorageProvider:
    """A ``StorageProvider`` on an S3-compatible bucket. The boto3 client is made on first use (thread-safe;
    clients are safe to share between threads) and holds the connection pool."""

    name = NAME

    def __init__(self, settings: S3StorageSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    # --- the client ----------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        s = self.settings
        config = Config(
            region_name=s.region,
            signature_version="s3v4",
            connect_timeout=s.connect_timeout_seconds,
            read_timeout=s.read_timeout_seconds,
            retries={"mode": "standard", "total_max_attempts": s.max_attempts},
            s3={"addressing_style": s.addressing_style},
            max_pool_connections=max(10, s.multipart_concurrency * 2),
            request_checksum_calculation=s.checksums,
            response_checksum_validation=s.checksums,
        )
        credentials: dict[str, Any] = {}
        if s.access_key_id is not None and s.secret_access_key is not None:
            credentials = {
                "aws_access_key_id": s.access_key_id,
                "aws_secret_access_key": s.secret_access_key.get_secret_value(),
                "aws_session_token": s.session_token.get_secret_value() if s.session_token else None,
            }
        global _session
        # One boto3 session per process, made and used under a lock: creating clients from a session is not
        # thread-safe, and a session loads the service models once (slow) for every client it makes.
        with _session_lock:
            if _session is None:
                _session = boto3.session.Session()
            return _session.client("s3", endpoint_url=s.endpoint_url, config=config, **credentials)

    def object_key(self, key: str) -> str:
        """The S3 key of a storage key (the prefix in front)."""
        return self.settings.prefix + _validate_key(key)

    def _encryption(self) -> dict[str, str]:
        s = self.settings
        if s.server_side_encryption == "none":
            return {}
        extra: dict[str, str] = {"ServerSideEncryption": s.server_side_encryption}
        if s.kms_key_id:
            extra["SSEKMSKeyId"] = s.kms_key_id
        return extra

    async def _call(self, operation: str, work: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(work, *args)
        except Exception as exc:
            if isinstance(exc, ProviderError | ValidationError):
                raise
            raise translate(exc, operation) from None

    # --- blocking parts, run in a thread -------------------------------------------------------------

    def _upload(self, object_key: str, data: bytes, extra: dict[str, str]) -> None:
        s = self.settings
        if len(data) < s.multipart_threshold_bytes:
            self.client.put_object(Bucket=s.bucket, Key=object_key, Body=data, **extra)
            return
        # Managed transfer: CreateMultipartUpload, parts in parallel, CompleteMultipartUpload (the object
        # appears at once, whole); on failure the upload is aborted so no parts are left behind.
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        config = TransferConfig(
            multipart_threshold=s.multipart_threshold_bytes,
            multipart_chunksize=s.multipart_chunk_bytes,
            max_concurrency=s.multipart_concurrency,
            use_threads=s.multipart_concurrency > 1,
        )
        with create_transfer_manager(self.client, config) as manager:
            manager.upload(io.BytesIO(data), s.bucket, object_key, extra_args=extra).result()

    def _download(self, object_key: str) -> bytes:
        response = self.client.get_object(Bucket=self.settings.bucket, Key=object_key)
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    # --- StorageProvider ---------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Upload; S3 makes an object visible only when complete, so a reader sees the old or the new."""
        object_key = self.object_key(key)
        if not CONTENT_TYPE_PATTERN.fullmatch(content_type):
            raise ValidationError("Invalid content type.", field="content_type")
        extra = {"ContentType": content_type, **self._encryption()}
        await self._call("put", self._upload, object_key, data, extra)
        return StoredObject(
            key=key, size=len(data), content_type=content_type, sha256=hashlib.sha256(data).hexdigest()
        )

    async def open(self, key: str) -> bytes:
        data: bytes = await self._call("get", self._download, self.object_key(key))
        return data

    async def delete(self, key: str) -> None:
        """DeleteObject; S3 answers 204 whether or not the key existed (idempotent)."""
        object_key = self.object_key(key)
        await self._call(
            "delete", lambda: self.client.delete_object(Bucket=self.settings.bucket, Key=object_key)
        )

    async def url(self, key: str, expires: timedelta) -> str:
        """A presigned GET (SigV4, signed locally: no request to S3) valid for ``expires``."""
        object_key = self.object_key(key)
        seconds = math.ceil(expires.total_seconds())
        if seconds <= 0:
            raise ValidationError("expires must be positive.", field="expires")
        if seconds > self.settings.url_max_seconds:
            raise ValidationError(
                f"expires may be at most {self.settings.url_max_seconds} seconds "
                f"({ENV_PREFIX}URL_MAX_SECONDS).",
                field="expires",
            )
        params = {
            "Bucket": self.settings.bucket,
            "Key": object_key,
            "ResponseCacheControl": "private, no-store",
        }
        url: str = await self._call(
            "presign",
            lambda: self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds),
        )
        return url

    # --- operations -----------------------------------------------------------------------------------

    async def check(self) -> ProviderCheck:
        """HeadBucket on the configured bucket (read-only; needs s3:ListBucket, as start-up does), then
        whether the bucket's region (``x-amz-bucket-region``) is the configured one."""
        bucket = self.settings.bucket
        try:
            response = await asyncio.to_thread(lambda: self.client.head_bucket(Bucket=bucket))
        except Exception as exc:
            details = _s3_error(exc)
            if details is None:
                error = translate(exc, "check")
                if isinstance(error, ProviderUnavailable):
                    return ProviderCheck(False, "S3 is unreachable.")
                return ProviderCheck(False, f"S3 cannot be used: {type(exc).__name__}.")
            code, status, _ = details
            if code in ("404", "NotFound", "NoSuchBucket"):
                return ProviderCheck(False, "The bucket does not exist (S3 404).")
            if code in CREDENTIAL_CODES:
                return ProviderCheck(
                    False,
                    f"S3 refused the credentials, or they lack s3:ListBucket on the bucket (S3 {code}).",
                )
            if code in REGION_CODES or code == "400":
                return ProviderCheck(
                    False, f"The bucket is in another region, or the endpoint is wrong (S3 {code})."
                )
            return ProviderCheck(False, f"S3 answered {code} (HTTP {status}).")
        headers = (response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
        region = response.get("BucketRegion") or headers.get("x-amz-bucket-region")
        wanted = self.settings.region
        if region and wanted and wanted != "auto" and region != wanted:
            return ProviderCheck(False, f"The bucket is in {region}, not in the configured region {wanted}.")
        where = f" in {region}" if region else ""
        return ProviderCheck(True, f"S3 accepted the credentials; the bucket exists{where}.")

    async def check_bucket(self) -> None:
        """HeadBucket: refuse (``ConfigError``) a missing bucket, refused credentials or a wrong region;
        only warn when S3 cannot be reached (a passing outage should not keep the platform down)."""
        bucket = self.settings.bucket
        try:
            await asyncio.to_thread(lambda: self.client.head_bucket(Bucket=bucket))
        except Exception as exc:
            details = _s3_error(exc)
            code = details[0] if details else None
            if code in ("404", "NotFound", "NoSuchBucket"):
                raise ConfigError(f"{ENV_PREFIX}BUCKET", f"the bucket {bucket!r} does not exist") from None
            if code in CREDENTIAL_CODES:
                raise ConfigError(
                    f"{ENV_PREFIX}ACCESS_KEY_ID",
                    f"S3 refused the credentials, or they lack s3:ListBucket on {bucket!r} (S3 {code})",
                ) from None
            if code in REGION_CODES or code == "400":
                raise ConfigError(
                    f"{ENV_PREFIX}REGION",
                    f"the bucket {bucket!r} is in another region, or the endpoint is wrong (S3 {code})",
                ) from None
            error = translate(exc, "head_bucket")
            if isinstance(error, ProviderUnavailable):
                log.warning("storage_s3.startup_check_skipped", reason="unavailable")
                return
            raise ConfigError(f"{ENV_PREFIX}BUCKET", f"the bucket cannot be used: {error}") from None


def _factory(settings: S3StorageSettings, context: ProviderContext) -> S3StorageProvider:
    return S3StorageProvider(settings)


@hookimpl
def register_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.STORAGE,
            name=NAME,
            factory=_factory,
            settings_model=S3StorageSettings,
            description="S3-compatible object storage (AWS S3, MinIO, Ceph, R2) with presigned URLs.",
        )
    ]


@hookimpl
async def startup(platform: Platform) -> None:
    """Check the bucket once at start-up when this provider is the one in use (and the check is on)."""
    provider = platform.providers.get(STORAGE)
    if isinstance(provider, S3StorageProvider) and provider.settings.check_bucket_on_startup:
        await provider.check_bucket()


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "S3-compatible object storage of images (AWS S3, MinIO, Ceph, Cloudflare R2)."}
