"""Errors the core raises. Every domain error carries a stable ``code`` (an enum) and, where it concerns
one input, the ``field`` it concerns — the GraphQL layer turns them into ``errors { field code message }``."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    PAGE_SIZE_TOO_LARGE = "PAGE_SIZE_TOO_LARGE"
    INVALID_NATIONAL_ID = "INVALID_NATIONAL_ID"
    INVALID_PHONE = "INVALID_PHONE"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    PAYMENT_EXPIRED = "PAYMENT_EXPIRED"
    PAYMENT_INVALID_STATE = "PAYMENT_INVALID_STATE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    IDENTITY_REJECTED = "IDENTITY_REJECTED"
    STORAGE_NOT_FOUND = "STORAGE_NOT_FOUND"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    CHILD_TOO_OLD = "CHILD_TOO_OLD"
    GUARDIANSHIP_NOT_CONFIRMED = "GUARDIANSHIP_NOT_CONFIRMED"
    PRESCRIPTION_NOT_ALLOWED = "PRESCRIPTION_NOT_ALLOWED"
    ANSWERS_INVALID = "ANSWERS_INVALID"
    INVALID_IMAGE = "INVALID_IMAGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    PROCESSING_RESTRICTED = "PROCESSING_RESTRICTED"
    SLOT_TAKEN = "SLOT_TAKEN"
    """The time was booked by someone else a moment ago: choose another."""
    NOT_SUPPORTED = "NOT_SUPPORTED"
    """The provider in use does not offer this (e.g. opening hours kept in a clinic's own system)."""
    LINK_EXPIRED = "LINK_EXPIRED"
    """A link from a text (forms, arrival, payment, survey) whose time is out, or whose appointment moved."""
    # Refusals of the request itself (GraphQL over HTTP), before or instead of running it:
    RATE_LIMITED = "RATE_LIMITED"
    """Too many requests from this client for now: wait ``Retry-After`` seconds."""
    BAD_REQUEST = "BAD_REQUEST"
    """The HTTP request is malformed: not a JSON object, not UTF-8, nested too deep, an unsupported type."""
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    """A persisted query's hash the server does not know (yet, or any more): send the document with it."""
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    """A variable or argument that does not fit its type (the client's mistake, shown as it is)."""
    UNAVAILABLE = "UNAVAILABLE"
    """A dependency (the database) is down for a moment: retry later."""
    INTERNAL = "INTERNAL"
    """Something unexpected on our side; the message says no more than that in production."""


class LegetimeError(Exception):
    """Base of every error the platform raises on purpose."""

    code: ErrorCode = ErrorCode.INVALID

    def __init__(self, message: str, *, field: str | None = None, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ValidationError(LegetimeError):
    code = ErrorCode.INVALID


class NotFound(LegetimeError):
    code = ErrorCode.NOT_FOUND


class SlotTaken(LegetimeError):
    """The slot was booked by someone else (scheduling: exactly one of concurrent bookings wins)."""

    code = ErrorCode.SLOT_TAKEN


class NotSupported(LegetimeError):
    code = ErrorCode.NOT_SUPPORTED


class LinkExpired(LegetimeError):
    """A signed link that was real but is no longer valid (out of its window, or the appointment moved)."""

    code = ErrorCode.LINK_EXPIRED


class Forbidden(LegetimeError):
    """Not allowed. Also used for objects the actor may not see, so it never reveals whether they exist."""

    code = ErrorCode.FORBIDDEN


class ConfigError(Exception):
    """Invalid configuration; raised at start-up. ``setting`` names the environment variable to fix."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class PluginError(Exception):
    """A plugin does not keep the contract (unknown hook, bad registration, duplicate name)."""


class ProviderError(LegetimeError):
    """A provider failed. ``retryable`` tells the job system whether trying again may help."""

    code = ErrorCode.PROVIDER_UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: ErrorCode | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, field=field, code=code)
        self.retryable = retryable


class ProviderUnavailable(ProviderError):
    code = ErrorCode.PROVIDER_UNAVAILABLE

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field, retryable=True)


class PaymentDeclined(ProviderError):
    code = ErrorCode.PAYMENT_DECLINED


class PaymentExpired(ProviderError):
    code = ErrorCode.PAYMENT_EXPIRED


class PaymentStateError(ProviderError):
    code = ErrorCode.PAYMENT_INVALID_STATE


class IdempotencyConflict(ProviderError):
    code = ErrorCode.IDEMPOTENCY_CONFLICT


class IdentityRejected(ProviderError):
    code = ErrorCode.IDENTITY_REJECTED


class StorageNotFound(ProviderError):
    code = ErrorCode.STORAGE_NOT_FOUND


class InvalidImage(ValidationError):
    """An upload that is not a JPEG, PNG or WebP we can decode (or one we will not take, e.g. animated)."""

    code = ErrorCode.INVALID_IMAGE


class ImageTooLarge(InvalidImage):
    """An image over the byte or pixel limit. A subclass of ``InvalidImage`` so one ``except`` covers both."""

    code = ErrorCode.IMAGE_TOO_LARGE


class IllegalTransition(LegetimeError):
    """A case event its status does not allow (core.case_states). ``status`` and ``event`` say which."""

    code = ErrorCode.ILLEGAL_TRANSITION

    def __init__(self, message: str, *, status: str, event: str) -> None:
        super().__init__(message)
        self.status = status
        self.event = event
