"""A local S3: moto's server mode on a free port, with IAM authentication on, for the ``s3`` storage plugin.

- **Authentication as S3 does it.** moto runs with its IAM simulation on (``/moto-api/reset-auth`` 0), so
  every request must carry a SigV4 signature by an access key moto knows: an unknown key is
  ``InvalidAccessKeyId``, a wrong secret ``SignatureDoesNotMatch`` (moto recomputes the signature), and the
  key's IAM policy decides the rest (``AccessDenied``). ``admin`` may do everything; ``user(actions)`` makes
  a key allowed only ``actions``.
- **Presigned URLs.** moto does not check a presigned URL (and with IAM on it fails on one with a 500), so
  ``browser_get`` checks it the way S3 documents it (SigV4 query authentication: the canonical request,
  ``X-Amz-Date`` + ``X-Amz-Expires`` against the clock, a known access key) with an implementation of its
  own, independent of botocore's signer, then fetches the object from moto.
- **One server per test process.** moto keeps its state in process-wide backends, so every server in a
  process would share it anyway; tests isolate themselves with a bucket of their own (``bucket``).
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest

REGION = "eu-north-1"
ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class BrowserResponse:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


class MotoS3:
    """moto's S3 (and IAM) on 127.0.0.1 and a free port; see the module docstring."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.region = REGION
        self._secrets: dict[str, str] = {}
        self._users: dict[str, str] = {}
        self._clients: dict[tuple[Credentials, str], Any] = {}
        self._lock = threading.Lock()
        self._session: Any = None
        self.admin = self._bootstrap()

    def _bootstrap(self) -> Credentials:
        """Make the admin key while moto still takes unsigned requests, then turn authentication on."""
        iam = self._iam(Credentials("bootstrap", "bootstrap"))
        admin = self._make_user(iam, "legetime-admin", ["*"])
        response = httpx.post(f"{self.endpoint_url}/moto-api/reset-auth", content=b"0")
        response.raise_for_status()
        self._previous_auth = response.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
        return admin

    def stop(self) -> None:
        httpx.post(f"{self.endpoint_url}/moto-api/reset-auth", content=str(self._previous_auth).encode())
        self._server.stop()

    # --- clients and keys -------------------------------------------------------------------------------

    def client(self, credentials: Credentials | None = None, service: str = "s3") -> Any:
        """A boto3 client signing with ``credentials`` (default: the admin), made once per key."""
        credentials = credentials or self.admin
        with self._lock:
            client = self._clients.get((credentials, service))
            if client is None:
                client = self._clients[(credentials, service)] = self._make_client(credentials, service)
        return client

    def _make_client(self, credentials: Credentials, service: str) -> Any:
        import boto3
        from botocore.config import Config

        if self._session is None:
            self._session = boto3.session.Session()
        return self._session.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region if service == "s3" else "us-east-1",
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )

    def _iam(self, credentials: Credentials) -> Any:
        return self.client(credentials, "iam")

    def _make_user(self, iam: Any, name: str, actions: list[str]) -> Credentials:
        iam.create_user(UserName=name)
        self._put_policy(iam, name, actions)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
        self._secrets[credentials.access_key_id] = credentials.secret_access_key
        self._users[credentials.access_key_id] = name
        return credentials

    @staticmethod
    def _put_policy(iam: Any, user: str, actions: list[str]) -> None:
        statement = {"Effect": "Allow", "Action": actions, "Resource": "*"}
        document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        iam.put_user_policy(UserName=user, PolicyName="legetime", PolicyDocument=document)

    def user(self, actions: list[str]) -> Credentials:
        """A new access key whose IAM policy allows only ``actions`` (e.g. ``["s3:GetObject"]``)."""
        return self._make_user(self._iam(self.admin), f"legetime-{uuid.uuid4().hex[:12]}", actions)

    def set_actions(self, credentials: Credentials, actions: list[str]) -> None:
        """Change what an access key made by ``user`` may do."""
        self._put_policy(self._iam(self.admin), self._users[credentials.access_key_id], actions)

    # --- buckets ----------------------------------------------------------------------------------------

    def create_bucket(self) -> str:
        name = f"legetime-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region}
        )
        return name

    def remove_bucket(self, name: str) -> None:
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=name)

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def head(self, bucket: str, key: str) -> dict[str, Any]:
        response: dict[str, Any] = self.client().head_object(Bucket=bucket, Key=key)
        return response

    def provider_settings(self, bucket: str, credentials: Credentials | None = None) -> dict[str, Any]:
        """The ``s3`` plugin's settings (field names) pointed at this server and ``bucket``."""
        credentials = credentials or self.admin
        return {
            "bucket": bucket,
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key_id": credentials.access_key_id,
            "secret_access_key": credentials.secret_access_key,
            "addressing_style": "path",
            "max_attempts": 1,
            "connect_timeout_seconds": 2,
            "read_timeout_seconds": 10,
        }

    def environment(self, bucket: str, credentials: Credentials | None = None) -> dict[str, str]:
        """The same as ``LEGETIME_STORAGE_S3_*`` environment variables."""
        return {
            f"LEGETIME_STORAGE_S3_{name.upper()}": str(value)
            for name, value in self.provider_settings(bucket, credentials).items()
        }

    # --- a browser following a presigned URL -------------------------------------------------------

    def browser_get(self, url: str, now: datetime | None = None) -> BrowserResponse:
        """GET ``url`` as a browser would, at ``now``: 403 unless it is a valid, unexpired presigned URL of
        a known key; then whatever S3 has (200 with the object, 404 when it is gone)."""
        refusal = self.check_presigned(url, now or datetime.now(UTC))
        if refusal is not None:
            return BrowserResponse(403, "application/xml", refusal.encode(), {})
        parts = urlsplit(url)
        kept = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("X-Amz-")
        ]
        plain = urlunsplit(parts._replace(query=urlencode(kept)))
        response = httpx.get(plain, headers=self._signed_headers(plain), timeout=10)
        return BrowserResponse(
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
            dict(response.headers),
        )

    def _signed_headers(self, url: str) -> dict[str, str]:
        """Header-signed GET by the admin (moto checks this signature itself)."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials as BotoCredentials

        request = AWSRequest(method="GET", url=url)
        credentials = BotoCredentials(self.admin.access_key_id, self.admin.secret_access_key)
        S3SigV4Auth(credentials, "s3", self.region).add_auth(request)
        return dict(request.headers.items())

    def check_presigned(self, url: str, now: datetime) -> str | None:
        """Why S3 would refuse this presigned GET (its error code), or None if it is valid at ``now``."""
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = dict(pairs)
        needed = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders")
        if len(query) != len(pairs) or any(name not in query for name in (*needed, "X-Amz-Signature")):
            return "AuthorizationQueryParametersError"
        if query["X-Amz-Algorithm"] != ALGORITHM or query["X-Amz-SignedHeaders"] != "host":
            return "AuthorizationQueryParametersError"
        try:
            access_key, day, region, service, terminal = query["X-Amz-Credential"].split("/")
            signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            lifetime = int(query["X-Amz-Expires"])
        except ValueError:
            return "AuthorizationQueryParametersError"
        secret = self._secrets.get(access_key)
        if secret is None:
            return "InvalidAccessKeyId"
        canonical_query = "&".join(
            f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
            for name, value in sorted(pairs)
            if name != "X-Amz-Signature"
        )
        canonical_request = "\n".join(
            ["GET", parts.path or "/", canonical_query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"]
        )
        scope = f"{day}/{region}/{service}/{terminal}"
        string_to_sign = "\n".join(
            [ALGORITHM, query["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
        )
        key = f"AWS4{secret}".encode()
        for part in (day, region, service, terminal):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return "SignatureDoesNotMatch"
        if not 1 <= lifetime <= 604800 or now > signed_at + timedelta(seconds=lifetime):
            return "AccessDenied: Request has expired"
        return None


_shared: MotoS3 | None = None
_shared_lock = threading.Lock()


def shared_server() -> MotoS3:
    """The test process's moto server, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MotoS3()
            atexit.register(_shared.stop)
        return _shared


@pytest.fixture
def s3_server() -> MotoS3:
    """The local S3 server (moto, IAM authentication on)."""
    return shared_server()


@pytest.fixture
def s3_bucket(s3_server: MotoS3) -> Iterator[str]:
    """A fresh bucket of its own for one test, removed afterwards."""
    bucket = s3_server.create_bucket()
    yield bucket
    s3_server.remove_bucket(bucket)


# --- the storage contract's driver (tests/contracts/test_storage_contract.py) ---------------------------


@contextmanager
def _build(spec: Any, data_dir: Path) -> Iterator[Any]:
    from legetime.testing import build_provider

    server = shared_server()
    bucket = server.create_bucket()
    try:
        yield build_provider(spec, data_dir, spec.settings_model(**server.provider_settings(bucket)))
    finally:
        server.remove_bucket(bucket)


def _fetch(provider: Any, url: str, later: timedelta) -> Any:
    from legetime.testing import Fetched

    got = shared_server().browser_get(url, datetime.now(UTC) + later)
    return Fetched(got.status, got.content_type, got.body)


def _tampered(url: str) -> list[str]:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)

    def changed(**changes: str) -> str:
        return urlunsplit(parts._replace(query=urlencode([(k, changes.get(k, v)) for k, v in pairs])))

    signature = query["X-Amz-Signature"]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    without = urlencode([(k, v) for k, v in pairs if k != "X-Amz-Signature"])
    return [
        changed(**{"X-Amz-Signature": flipped}),
        changed(**{"X-Amz-Expires": str(int(query["X-Amz-Expires"]) + 3600)}),
        changed(**{"X-Amz-Date": "20991231T000000Z"}),
        changed(**{"X-Amz-Signature": ""}),
        urlunsplit(parts._replace(query=without)),
        urlunsplit(parts._replace(path=parts.path + "x")),  # another key, same signature
    ]


def contract_driver() -> Any:
    """The storage contract's driver for the ``s3`` provider: a fresh bucket on the local server per test,
    signed URLs fetched (and checked, as S3 does) by ``browser_get``."""
    from legetime.testing import StorageDriver

    return StorageDriver(fetch=_fetch, tampered=_tampered, build=_build)
