"""The plugin SDK: everything a plugin imports from Legetime, and the stable API for plugin authors.

A plugin imports from here and nowhere else in Legetime (built-in plugins included; ``make lint`` holds
them to it). A name here keeps its meaning across minor versions; anything not here is internal and may
move. The hooks themselves are documented in ``legetime.core.hookspecs`` and ``docs/hooks.md``; writing a
plugin is explained in ``docs/plugins.md``; ``legetime.testing`` runs a capability's contract suite
against a plugin's provider.
"""

from __future__ import annotations

from legetime import __version__
from legetime.core.hookspecs import PROJECT_NAME, hookimpl
from legetime.core.identity.nationalid import InvalidNationalId, NationalId, parse_national_id
from legetime.core.identity.swedish_personal_number import (
    InvalidSwedishPersonalNumber,
    parse_swedish_personal_number,
)
from legetime.core.platform.config import Settings
from legetime.core.platform.db.base import UTCDateTime
from legetime.core.platform.db.migrate import upgrade_plugin_tables
from legetime.core.platform.db.plugin_tables import PluginDatabase, PluginTables
from legetime.core.platform.errors import (
    ConfigError,
    ErrorCode,
    IdempotencyConflict,
    IdentityRejected,
    LegetimeError,
    NotFound,
    NotSupported,
    PaymentDeclined,
    PaymentExpired,
    PaymentStateError,
    PluginError,
    ProviderError,
    ProviderUnavailable,
    SlotTaken,
    StorageNotFound,
    ValidationError,
)
from legetime.core.platform.events import Event, EventType
from legetime.core.platform.jobs.outbox import enqueue
from legetime.core.platform.jobs.types import JobContext, JobHandler, PeriodicJob
from legetime.core.platform.money import Money
from legetime.core.platform.providers import (
    CAPABILITIES,
    IDENTITY,
    INVOICING,
    JOURNAL,
    PAYMENT,
    SCHEDULING,
    SMS,
    STORAGE,
    VIDEO,
    Capability,
    CapabilityDescription,
    HttpsUrl,
    NoSettings,
    ProviderCheck,
    ProviderContext,
    ProviderSettings,
    ProviderSpec,
)
from legetime.core.platform.providers.identity import (
    AssuranceLevel,
    IdentityProvider,
    LoginChallenge,
    LoginPending,
    LoginRequest,
    LoginStart,
    VerifiedIdentity,
)
from legetime.core.platform.providers.invoicing import (
    InvoiceLine,
    InvoiceRequest,
    InvoiceStatus,
    InvoicingProvider,
    IssuedInvoice,
)
from legetime.core.platform.providers.journal import (
    JournalContext,
    JournalDraft,
    JournalMessage,
    JournalProvider,
    Provenance,
)
from legetime.core.platform.providers.payment import (
    Payment,
    PaymentAction,
    PaymentActionKind,
    PaymentAmounts,
    PaymentMethodKind,
    PaymentOption,
    PaymentProvider,
    PaymentStatus,
    ReserveRequest,
    WebhookEvent,
    derive_status,
    webhook_rejected,
)
from legetime.core.platform.providers.scheduling import (
    Booking,
    OpeningHours,
    ScheduleManagement,
    SchedulingProvider,
    Slot,
    SlotQuery,
    Weekday,
)
from legetime.core.platform.providers.sms import (
    E164,
    DeliveryReport,
    DeliveryStatus,
    SmsEncoding,
    SmsMessage,
    SmsProvider,
    SmsReceipt,
    check_sms_message,
)
from legetime.core.platform.providers.sms_segments import encode_info
from legetime.core.platform.providers.storage import StorageProvider, StoredObject
from legetime.core.platform.providers.video import (
    VideoJoin,
    VideoParticipant,
    VideoProvider,
    VideoRole,
    VideoRoom,
    VideoRoomRequest,
)
from legetime.core.platform.runtime import Platform
from legetime.core.platform.summary_care import (
    CriticalInformation,
    CriticalInformationKind,
    Medication,
    SpecialistVisit,
    SummaryCareRecord,
)

__all__ = [  # noqa: RUF022 - grouped by purpose, as docs/plugins.md lists them
    # hooks and the platform a hook receives
    "PROJECT_NAME",
    "Platform",
    "__version__",
    "hookimpl",
    # offering a provider
    "CAPABILITIES",
    "IDENTITY",
    "INVOICING",
    "JOURNAL",
    "PAYMENT",
    "SCHEDULING",
    "SMS",
    "STORAGE",
    "VIDEO",
    "Capability",
    "CapabilityDescription",
    "HttpsUrl",
    "NoSettings",
    "ProviderCheck",
    "ProviderContext",
    "ProviderSettings",
    "ProviderSpec",
    "Settings",
    # a plugin's own tables
    "PluginDatabase",
    "PluginTables",
    "UTCDateTime",
    "upgrade_plugin_tables",
    # identity
    "AssuranceLevel",
    "IdentityProvider",
    "InvalidNationalId",
    "InvalidSwedishPersonalNumber",
    "LoginChallenge",
    "LoginPending",
    "LoginRequest",
    "LoginStart",
    "NationalId",
    "VerifiedIdentity",
    "parse_national_id",
    "parse_swedish_personal_number",
    # payment
    "Money",
    "Payment",
    "PaymentAction",
    "PaymentActionKind",
    "PaymentAmounts",
    "PaymentMethodKind",
    "PaymentOption",
    "PaymentProvider",
    "PaymentStatus",
    "ReserveRequest",
    "WebhookEvent",
    "derive_status",
    "webhook_rejected",
    # sms
    "DeliveryReport",
    "DeliveryStatus",
    "SmsEncoding",
    "SmsMessage",
    "SmsProvider",
    "SmsReceipt",
    "check_sms_message",
    "E164",
    "encode_info",
    # storage
    "StorageProvider",
    "StoredObject",
    # journal drafting
    "JournalContext",
    "JournalDraft",
    "JournalMessage",
    "JournalProvider",
    "Provenance",
    # scheduling (appointments' bookable times)
    "Booking",
    "OpeningHours",
    "ScheduleManagement",
    "SchedulingProvider",
    "Slot",
    "SlotQuery",
    "Weekday",
    # video consultations
    "VideoJoin",
    "VideoParticipant",
    "VideoProvider",
    "VideoRole",
    "VideoRoom",
    "VideoRoomRequest",
    # invoicing
    "InvoiceLine",
    "InvoiceRequest",
    "InvoiceStatus",
    "InvoicingProvider",
    "IssuedInvoice",
    # the summary care record (fetch_summary_care_record)
    "CriticalInformation",
    "CriticalInformationKind",
    "Medication",
    "SpecialistVisit",
    "SummaryCareRecord",
    # jobs
    "JobContext",
    "JobHandler",
    "PeriodicJob",
    "enqueue",
    # domain events (handle_event)
    "Event",
    "EventType",
    # errors
    "ConfigError",
    "ErrorCode",
    "IdempotencyConflict",
    "IdentityRejected",
    "LegetimeError",
    "NotFound",
    "NotSupported",
    "PaymentDeclined",
    "PaymentExpired",
    "PaymentStateError",
    "PluginError",
    "ProviderError",
    "ProviderUnavailable",
    "SlotTaken",
    "StorageNotFound",
    "ValidationError",
]
