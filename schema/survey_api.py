"""The patient survey as clients see it: the questions behind an SMS link and the anonymous answer (no
login: the link's token), and the aggregates operators see. The rules live in
``legetime.core.appointments.surveys``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import strawberry

from legetime.core.appointments import surveys
from legetime.core.identity.ctx import Ctx
from legetime.core.platform.errors import ValidationError
from legetime.schema.clinic_api import parse_uuid
from legetime.schema.context import Info
from legetime.schema.errors import Error
from legetime.schema.mutation import mutate

SurveyKind = strawberry.enum(surveys.SurveyKind, name="SurveyKind")


@strawberry.type(description="A question, answered with a score from 1 (lowLabel) to 5 (highLabel).")
class SurveyQuestion:
    id: str
    text: str
    low_label: str
    high_label: str


def _questions(found: tuple[surveys.Question, ...]) -> list[SurveyQuestion]:
    return [
        SurveyQuestion(id=q.id, text=q.text, low_label=surveys.LOW_LABEL, high_label=surveys.HIGH_LABEL)
        for q in found
    ]


@strawberry.type(description="A survey still open to an answer.")
class Survey:
    kind: SurveyKind  # type: ignore[valid-type]
    questions: list[SurveyQuestion]
    expires_at: datetime


@strawberry.input
class SurveyScoreInput:
    question: str
    score: int = strawberry.field(description="1 to 5.")


@strawberry.input
class AnswerSurveyInput:
    token: str = strawberry.field(description="The token of the link in the SMS.")
    scores: list[SurveyScoreInput] = strawberry.field(description="One score for every question.")


@strawberry.type
class AnswerSurveyPayload:
    answered: bool = False
    errors: list[Error]


@strawberry.type(description="How one question was answered: never fewer than 5 answers.")
class SurveyQuestionResult:
    question: SurveyQuestion
    count: int
    mean: float
    distribution: list[int] = strawberry.field(description="How many answered 1, 2, 3, 4 and 5.")


@strawberry.type(description="The answers of one kind of survey in the period, or `suppressed`.")
class SurveyResult:
    kind: SurveyKind  # type: ignore[valid-type]
    answers: int | None = strawberry.field(description="Null when suppressed.")
    suppressed: bool = strawberry.field(
        description=f"Fewer than {surveys.MIN_GROUP} answers: not shown, so no answer can be singled out."
    )
    questions: list[SurveyQuestionResult]


@strawberry.type
class SurveyQuery:
    @strawberry.field(
        description="The questions of the survey behind an SMS link (no login). NOT_FOUND for an unknown "
        "link, LINK_EXPIRED after 30 days, CONFLICT once answered."
    )
    async def survey(self, info: Info, token: str) -> Survey:
        ctx = await info.context.read()
        found = await surveys.open_survey(ctx, token)
        return Survey(kind=found.kind, questions=_questions(found.questions), expires_at=found.expires_at)

    @strawberry.field(
        description="Operators: the anonymous answers of the months from `from` to `to`, per kind of survey "
        f"and question; a kind with fewer than {surveys.MIN_GROUP} answers is suppressed."
    )
    async def survey_results(
        self,
        info: Info,
        from_: Annotated[date, strawberry.argument(name="from", description="A day of the first month.")],
        to: Annotated[date, strawberry.argument(description="A day of the last month (inclusive).")],
        clinic_id: strawberry.ID | None = None,
    ) -> list[SurveyResult]:
        ctx = await info.context.read()
        clinic = parse_uuid(clinic_id, "clinicId") if clinic_id is not None else None
        found = await surveys.results(ctx, from_, to, clinic)
        return [
            SurveyResult(
                kind=kind.kind,
                answers=kind.answers,
                suppressed=kind.suppressed,
                questions=[
                    SurveyQuestionResult(
                        question=_questions((q.question,))[0],
                        count=q.count,
                        mean=q.mean,
                        distribution=list(q.distribution),
                    )
                    for q in kind.questions
                ],
            )
            for kind in found
        ]


@strawberry.type
class SurveyMutation:
    @strawberry.mutation(
        description="Answer the survey behind an SMS link (no login), once. The answer is stored without "
        "identity: the kind of survey, the month, the clinic of a visit and the scores."
    )
    async def answer_survey(self, info: Info, input: AnswerSurveyInput) -> AnswerSurveyPayload:
        async def work(ctx: Ctx) -> bool:
            scores: dict[str, int] = {}
            for item in input.scores:
                if item.question in scores:
                    raise ValidationError("Hvert spørsmål besvares én gang.", field="scores")
                scores[item.question] = item.score
            await surveys.answer(ctx, input.token, scores)
            return True

        answered, errors = await mutate(info, work)
        return AnswerSurveyPayload(answered=bool(answered), errors=errors)
