"""What became of a provider's call to one of our webhooks (payments, SMS delivery reports)."""

from __future__ import annotations

from enum import StrEnum


class WebhookOutcome(StrEnum):
    ACCEPTED = "accepted"
    """Verified and taken (or a replay of a delivery already taken, or a report of nothing of ours)."""
    UNKNOWN_PROVIDER = "unknown_provider"
    REJECTED = "rejected"
    """The provider plugin refused it (signature, freshness, shape)."""
