"""Helpers shared by the tests (not fixtures: plain functions)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from core.config import Settings
from core.hooks import Hooks
from core.plugins import create_plugin_manager
from core.providers import Capability, ProviderContext, ProviderSpec


def offered_specs(capability: Capability) -> list[ProviderSpec]:
    """Every provider of a capability that the default plugins and installed plugins offer.

    Contract suites parametrise over this, so a new provider is held to the same contract at once."""
    pm = create_plugin_manager(load_entry_points=False)
    return [spec for spec in Hooks(pm).providers() if spec.capability is capability]


def build_provider(spec: ProviderSpec, data_dir: Path, **settings: Any) -> Any:
    """Build one provider the way the platform does, with a fresh data directory."""
    context = ProviderContext(
        settings=Settings(data_dir=data_dir, **settings),
        derive_key=lambda purpose: hashlib.sha256(b"test-master-secret" + purpose.encode()).digest(),
    )
    return spec.factory(spec.settings_model(), context)
