"""Who may read what: every permission of the schema lives here."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from legetime.core.platform.errors import Forbidden
from legetime.schema.context import Info


class OperatorOrDevelopment(BasePermission):
    """Operational metadata (plugins, versions): operators in production; anyone on a development box."""

    message = "Ikke tilgang."
    error_class = Forbidden  # type: ignore[assignment]  # strawberry calls error_class(message): ours is typed

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return not info.context.platform.settings.is_production
