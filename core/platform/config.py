"""Configuration from ``LEGETIME_*`` environment variables (pydantic-settings).

The embedded default needs nothing installed: a SQLite file in the data directory and in-process jobs.
``LEGETIME_DATABASE_URL`` and ``LEGETIME_REDIS_URL`` switch to PostgreSQL and Redis. In production the
settings refuse unsafe defaults with an error that names the variable to fix.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections import Counter
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from legetime.core.platform.crypto import parse_master_keys
from legetime.core.platform.errors import ConfigError

ENV_PREFIX = "LEGETIME_"
SUPPORTED_DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
# A list read from one variable as "a,b" (JSON lists work too).
NameList = Annotated[list[str], NoDecode]


ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+/?")
MIN_SECRET_BITS = 128
MAX_SLA_ALERT_MINUTES = 48 * 60
"""An alert threshold is at most two days before the deadline: no deadline is further away than that."""


def estimated_entropy_bits(secret: str) -> float:
    """A rough upper bound of a secret's entropy from its own letters (Shannon, per character × length):
    catches "aaaa…" and "passwordpassword…", not a clever human; generated secrets score far above."""
    counts = Counter(secret)
    per_character = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    return per_character * len(secret) if len(counts) >= 16 else 0.0


DEFAULT_PHONE_REGION = "NO"
"""Country of a phone number without a country code when nobody's own country tells it."""

DEFAULT_PORT = 8000
"""Where ``legetime serve`` listens when neither ``--port`` nor ``$PORT`` says otherwise."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every platform setting. A provider's settings live in its own model (a ``ProviderSettings``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(default=Path("var"), description="Where the embedded default keeps its files.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default: SQLite file in the data directory."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; set it to run jobs on dramatiq's RedisBroker and workers."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Master secret for derived keys (signatures, token hashes). Generated into the data "
        "directory in development; required in production.",
    )
    master_keys: SecretStr | None = Field(
        default=None,
        description="Master keys that wrap the per-case data keys: comma-separated id=<base64url 32 bytes>; "
        "the first wraps new keys, the rest only unwrap (rotation). 'local' names the key derived from the "
        "master secret, which is the only key when this is unset.",
    )

    # Providers, by capability: which are enabled (comma-separated) and which is the default.
    identity_providers: NameList = Field(default_factory=lambda: ["bankid-test"])
    payment_providers: NameList = Field(default_factory=lambda: ["fake"])
    sms_providers: NameList = Field(
        default_factory=lambda: ["outbox"],
        description="SMS providers in order: the first sends; a text it refuses or cannot deliver goes "
        "through the next (failover).",
    )
    storage_provider: str = "local"
    journal_provider: str = "template"
    scheduling_provider: str = Field(
        "builtin",
        description="Where bookable times come from: the built-in opening hours, or a clinic system.",
    )
    video_provider: str = Field(
        "video-test",
        description="Video consultations (live, never recorded); the default is a simulation, refused in "
        "production: name a real one (livekit), or leave it empty for a service without video.",
    )
    invoicing_provider: str = Field(
        "pdf", description="Invoices for visits not paid by their payment link (the default makes the PDF)."
    )
    disabled_plugins: NameList = Field(
        default_factory=list, description="Plugin names not to load (default or third-party)."
    )

    # The consultation.
    price_minor: int = Field(default=35000, gt=0, description="Fee in minor units (øre).")
    currency: str = Field(default="NOK", pattern=r"^[A-Z]{3}$")
    sla_cutoff: time = time(20, 0)
    timezone: str = "Europe/Oslo"
    sla_alert_minutes: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [60, 15],
        description="Minutes before an open case's deadline when clinicians and operators are alerted "
        "(comma-separated, once per case and threshold; empty: no alerts).",
    )

    # Appointments (docs/appointments.md).
    appointment_change_hours: float = Field(
        default=24,
        ge=0,
        description="Patients may move or cancel an appointment until this many hours before it begins.",
    )
    invoice_fee_minor: int = Field(
        default=6500, ge=0, description="Invoice fee in minor units (øre), added when a visit is invoiced."
    )
    invoice_due_days: int = Field(default=14, ge=1, le=60, description="Days until an invoice is due.")
    appointment_retention_days: int = Field(
        default=90,
        ge=0,
        description="Days an appointment's message and forms are kept after it ended (paid or cancelled).",
    )

    # Logins and sessions.
    session_ttl_hours: float = Field(default=12, gt=0, description="How long a login session lasts.")
    login_ttl_minutes: float = Field(default=10, gt=0, description="How long a started login may take.")
    login_rate_limit: str = Field(
        default="10/minute;100/hour",
        description="How many logins one client (IP address) may start ('limits' notation, ';' between).",
    )
    login_poll_rate_limit: str = Field(
        default="120/minute", description="How often one client may poll its logins (completeLogin)."
    )
    persisted_query_rate_limit: str = Field(
        default="60/minute;600/hour",
        description="How many documents one client (IP address) may have the server keep as persisted "
        "queries; a document counts one per started 10,000 characters. A document over it still runs, "
        "but is not kept (the client sends it in full again).",
    )
    public_url: str = Field(
        default_factory=lambda: f"http://127.0.0.1:{os.environ.get('PORT') or DEFAULT_PORT}",
        description="Where patients reach the service (links in SMS and to images); by default this "
        "machine on $PORT, so `PORT=… make run` moves the links with the server.",
    )
    auto_close_hours: float = Field(
        default=72, gt=0, description="Answered cases close by themselves (and are charged) after this time."
    )
    sms_sender: str = Field(default="Legetime", max_length=11, description="Alphanumeric SMS sender.")
    default_phone_region: str = Field(
        default=DEFAULT_PHONE_REGION,
        description="Country of a phone number written without a country code, when the person's own "
        "country is not known (the on-duty number): ISO 3166-1 alpha-2, e.g. NO or SE.",
    )

    # Payments.
    payment_abandon_minutes: float = Field(
        default=60, gt=0, description="A payment the payer has not approved in this time is cancelled."
    )
    payment_reconcile_minutes: float = Field(
        default=15, gt=0, description="How often open payments are re-fetched from the provider."
    )
    payment_expiry_margin_hours: float = Field(
        default=24,
        ge=0,
        description="Answered cases close (and are charged) this long before the hold lapses.",
    )

    # Privacy.
    retention_months: int = Field(
        default=3, ge=0, description="Months a case's communication is kept after it is closed or cancelled."
    )
    purge_batch_size: int = Field(default=500, ge=1, le=10000, description="Cases per purge transaction.")
    purge_interval_minutes: float = Field(default=60, gt=0, description="How often the purge job runs.")

    # GraphQL.
    graphiql: bool = True
    introspection: bool = Field(
        default=True, description="On by default in development; in production off unless set to true."
    )
    cors_origins: NameList = Field(
        default_factory=list,
        description="Origins of the frontends that may call the API from a browser "
        "(https://app.example.no, comma-separated); in development also any page on localhost.",
    )
    max_query_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=15, ge=1)
    max_tokens: int = Field(default=2000, ge=50)
    max_page_size: int = Field(default=100, ge=1)
    default_page_size: int = Field(default=20, ge=1)
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body of a GraphQL request or a webhook, refused before it is read "
        "(an image upload may add twice the image limit, 2 × 10 MiB).",
    )

    # Jobs.
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    job_max_attempts: int = Field(default=8, ge=1)
    job_relay_timeout_seconds: float = Field(
        default=300, gt=0, description="Relay a job again if no worker finished it in this time."
    )
    worker_threads: int = Field(default=4, ge=1)
    queue_namespace: str = Field(default="legetime", description="Redis key prefix of the job queues.")

    log_level: str = "INFO"
    log_json: bool = False

    # Metrics and traces (docs/operations.md, "Metrics and traces").
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that /metrics requires (16+ characters); in production /metrics answers "
        "404 without it, in development it is open while unset.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Prometheus multiprocess mode: a directory the processes of one machine share (serve "
        "--workers, worker), so that /metrics adds up all of them. `serve --workers N` uses a temporary one "
        "when this is unset.",
    )
    otel_enabled: bool | None = Field(
        default=None,
        description="OpenTelemetry traces, exported as the standard OTEL_* variables say; by default on "
        "when OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) is set.",
    )

    @field_validator(
        "identity_providers", "payment_providers", "sms_providers", "disabled_plugins", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # Environment variables carry lists as "a,b" (JSON lists work too).
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("sla_alert_minutes", mode="before")
    @classmethod
    def _alert_minutes(cls, value: Any) -> Any:
        if isinstance(value, str):  # "60,15" from the environment; "" turns the alerts off
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("sla_alert_minutes")
    @classmethod
    def _alert_thresholds(cls, value: list[int]) -> list[int]:
        for minutes in value:
            if not 1 <= minutes <= MAX_SLA_ALERT_MINUTES:
                raise ValueError(
                    f"{minutes} is not a number of minutes between 1 and {MAX_SLA_ALERT_MINUTES}"
                )
        return sorted(set(value), reverse=True)

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("use a random token of at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if url.drivername not in SUPPORTED_DATABASE_DRIVERS:
            supported = ", ".join(SUPPORTED_DATABASE_DRIVERS)
            raise ValueError(f"driver {url.drivername!r} is not supported; use one of {supported}")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
        return [origin.rstrip("/") for origin in value]

    @field_validator("login_rate_limit", "login_poll_rate_limit", "persisted_query_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit like '10/minute;100/hour'") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("master_keys")
    @classmethod
    def _master_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            entries = [e for e in value.get_secret_value().split(",") if e.strip()]
            if not entries:
                raise ValueError("name at least one master key (id=<base64url of 32 bytes>)")
            parse_master_keys(entries, local_key=bytes(32))  # raises ValueError naming the entry
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _phone_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region == DEFAULT_PHONE_REGION:  # known good: the start does not load the numbering plans
            return region
        import phonenumbers  # its metadata only when an operator names another country

        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a country with a phone numbering plan (ISO 3166-1 alpha-2)")
        return region

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _production_is_safe(self) -> Settings:
        if self.environment != Environment.PRODUCTION:
            return self
        if self.secret_key is None or len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("LEGETIME_SECRET_KEY: production needs a secret key of at least 32 characters")
        if estimated_entropy_bits(self.secret_key.get_secret_value()) < MIN_SECRET_BITS:
            raise ValueError(
                "LEGETIME_SECRET_KEY: too predictable for a secret (repeated or few distinct characters); "
                "generate one: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if "introspection" not in self.model_fields_set:
            self.introspection = False  # the schema is the frontends' to know, not the internet's
        if "graphiql" not in self.model_fields_set:
            raise ValueError(
                "LEGETIME_GRAPHIQL: GraphiQL is on by default; in production set it explicitly "
                "(false, or true to allow it)"
            )
        if self.default_page_size > self.max_page_size:
            raise ValueError("LEGETIME_DEFAULT_PAGE_SIZE: larger than LEGETIME_MAX_PAGE_SIZE")
        return self

    @classmethod
    def defaults(cls, **values: Any) -> Settings:
        """Settings from the given values and the defaults only, ignoring the environment (SDL export)."""
        return _DefaultsOnly(**values)

    # Derived values.
    @property
    def is_production(self) -> bool:
        return self.environment == Environment.PRODUCTION

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'legetime.db').resolve()}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def master_key_entries(self) -> list[str]:
        if self.master_keys is None:
            return ["local"]
        return [e.strip() for e in self.master_keys.get_secret_value().split(",") if e.strip()]

    def master_secret(self) -> bytes:
        """The master secret; in development generated once into the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Created private, not made private after: no moment in which another user could read it.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


class _DefaultsOnly(Settings):
    # Only the schema export uses it: its validator is built then, not at every start-up.
    model_config = SettingsConfigDict(defer_build=True)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: Any, init_settings: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return (init_settings,)


def env_name(field: str, prefix: str = ENV_PREFIX) -> str:
    return f"{prefix}{field}".upper()


def describe_validation_error(exc: ValidationError, prefix: str = ENV_PREFIX) -> ConfigError:
    """Turn the first pydantic error into a ConfigError that names the environment variable."""
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if not isinstance(part, int)]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc:
        return ConfigError(env_name(loc[0], prefix), message)
    # Model-level validators name the variable themselves: "LEGETIME_X: why".
    setting, _, why = message.partition(": ")
    if setting.startswith(prefix):
        return ConfigError(setting, why)
    return ConfigError(prefix + "*", message)


RENAMED = {"LEGETIME_SMS_PROVIDER": "LEGETIME_SMS_PROVIDERS"}
"""Variables of earlier versions: refused with their new name, never silently ignored."""


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (plus explicit overrides); raise ConfigError naming the variable."""
    for old, new in RENAMED.items():
        if old in os.environ:
            raise ConfigError(
                old, f"renamed to {new} (a comma-separated list: the first sends, the rest fail over)"
            )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None
    except SettingsError as exc:
        field = str(exc).split('"')[1] if '"' in str(exc) else "*"
        raise ConfigError(env_name(field), str(exc)) from None
