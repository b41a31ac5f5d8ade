"""Who is asking: the actor every core operation is done on behalf of."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from legetime.core.platform.db.models import IntegratorScope, StaffRole
from legetime.core.platform.errors import ErrorCode, Forbidden


@dataclass(frozen=True)
class Integrator:
    """The integrator account a request's token belongs to (``integrators``)."""

    id: uuid.UUID
    name: str
    scopes: frozenset[IntegratorScope]


@dataclass(frozen=True)
class Actor:
    person_id: uuid.UUID | None
    staff_roles: frozenset[StaffRole] = field(default_factory=frozenset)
    session_id: uuid.UUID | None = None
    country: str | None = None
    """Issuer of her national ID (``"NO"``, ``"SE"``; see ``countries``): which guardian rules apply to
    the cases she opened for a child. None when not known: the strictest rules apply."""
    integrator: Integrator | None = None
    """A machine's account, not a person: it reaches only the fields its scopes name."""

    @property
    def is_anonymous(self) -> bool:
        return self.person_id is None

    @property
    def is_clinician(self) -> bool:
        return StaffRole.CLINICIAN in self.staff_roles

    @property
    def is_operator(self) -> bool:
        return StaffRole.OPERATOR in self.staff_roles

    @property
    def is_privacy_officer(self) -> bool:
        """Reviews the access log (``legetime.core.protection.access_review``)."""
        return StaffRole.PRIVACY_OFFICER in self.staff_roles

    @property
    def role(self) -> str:
        """The role an access-log entry names (a clinician who is also an operator acts as clinician)."""
        if self.is_clinician:
            return "clinician"
        if self.is_operator:
            return "operator"
        if self.is_privacy_officer:
            return "privacy_officer"
        if self.integrator is not None:
            return "integrator"
        return "anonymous" if self.is_anonymous else "patient"


ANONYMOUS = Actor(person_id=None)


def require_operator(actor: Actor) -> None:
    """Operators only: ``UNAUTHENTICATED`` for nobody logged in, ``FORBIDDEN`` for anyone else."""
    if actor.person_id is None:
        raise Forbidden("Du må logge inn.", code=ErrorCode.UNAUTHENTICATED)
    if not actor.is_operator:
        raise Forbidden("Bare driftsoperatører har tilgang.")


class _System(Actor):
    """The platform itself (periodic jobs): logged as "system", never given access to anything."""

    @property
    def role(self) -> str:
        return "system"


SYSTEM = _System(person_id=None)
