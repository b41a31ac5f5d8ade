"""What an erasure did and what it kept, as GraphQL types: answered by withdrawing consent (``case_api``)
and by the patient's rights (``privacy_api``)."""

from __future__ import annotations

import strawberry

from legetime.core.privacy import rights as privacy


@strawberry.type(description="Something an erasure does not delete, and the legal duty that keeps it.")
class KeptData:
    what: str
    why: str


@strawberry.type(
    description="What an erasure deleted now, what waits for cases in progress, and what is kept."
)
class ErasureAccount:
    rule: str
    cases: list[str] = strawberry.field(description="Numbers of the cases whose communication was deleted.")
    answers: int
    messages: int
    images: int
    pending: list[str] = strawberry.field(description="Cases in progress: deleted as soon as they end.")
    kept: list[KeptData]
    appointments: list[str] = strawberry.field(
        description="Numbers of the appointments whose message and forms were deleted (an erasure request)."
    )
    pending_appointments: list[str] = strawberry.field(
        description="Appointments still open: their message and forms are deleted as soon as they end."
    )

    @classmethod
    def of(cls, account: privacy.ErasureAccount) -> ErasureAccount:
        return cls(
            rule=account.rule,
            cases=account.cases,
            answers=account.answers,
            messages=account.messages,
            images=account.images,
            pending=account.pending,
            kept=[KeptData(what=k.what, why=k.why) for k in account.kept],
            appointments=account.appointments,
            pending_appointments=account.pending_appointments,
        )
