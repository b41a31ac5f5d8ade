"""Per-request context: the platform and the request (DataLoaders and the actor join it here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.types import Info as StrawberryInfo

from core.platform import Platform


@dataclass
class Context:
    platform: Platform
    request: Any


Info = StrawberryInfo[Context, None]
