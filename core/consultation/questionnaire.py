"""The health questionnaire a patient answers before submitting a case ("the same questions as in a
physical consultation").

The questions are **versioned data**, not code: JSON files named ``<key>.v<version>.json`` in
``questionnaires/`` next to this module. A case records the key and version it was started with, so
publishing a new
version never changes what an existing case asked or how its answers are read. A published file is
therefore never edited — a change is a new version.

A definition is checked completely when it is loaded (unique ids, conditions that point backwards to a
question with matching values, type-specific fields only where they mean something), so a broken file
fails at start-up or in CI, not in front of a patient.

Answers are checked here too, in one pass over the questions in order:

* every problem is reported, one :class:`AnswerError` per question, so the frontend can mark all
  fields at once;
* ``partial=True`` (saving a draft) checks what was given; ``partial=False`` (submitting) also demands
  every required question that is shown;
* answers to questions that are not shown (the patient changed an earlier answer, or switched between
  "for myself" and "for my child") are dropped without complaint; unknown question ids are errors;
* the clean result holds JSON-ready values only (dates as ISO strings), so it can be stored as is.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, TypeAlias
from zoneinfo import ZoneInfo

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from legetime.core.platform.errors import ErrorCode, NotFound, ValidationError

__all__ = [
    "TEXT_MAX_LENGTH",
    "AnswerError",
    "AnswerValue",
    "AnswersInvalid",
    "Audience",
    "Choice",
    "CleanAnswers",
    "Condition",
    "Question",
    "QuestionType",
    "Questionnaire",
    "QuestionnaireDefinitionError",
    "QuestionnaireNotFound",
    "answers_for_display",
    "available_versions",
    "load_questionnaire",
    "validate_answers",
    "visible_questions",
]

TEXT_MAX_LENGTH: Final = 4000
"""Default ceiling for free text: room for a thorough description, not for pasted documents."""

DEFAULT_ZONE: Final = ZoneInfo("Europe/Oslo")
"""Whose "today" decides whether a date is in the future when the caller does not say (``ctx.today``)."""

SLUG_PATTERN: Final = r"^[a-z][a-z0-9_]{1,49}$"
CHOICE_VALUE_PATTERN: Final = r"^[a-z0-9][a-z0-9_]{0,49}$"
_SLUG = re.compile(SLUG_PATTERN)
_FILE_NAME = re.compile(r"^(?P<key>[a-z][a-z0-9_]{1,49})\.v(?P<version>[1-9][0-9]{0,5})\.json$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
NonEmptyText = Annotated[StrictStr, Field(min_length=1, pattern=r"\S")]
Audience: TypeAlias = Literal["all", "self", "child"]

AnswerValue: TypeAlias = str | bool | int | float | list[str]
"""A clean answer: text, choice value, yes/no, number, ISO date (``YYYY-MM-DD``) or multi-choice values."""
CleanAnswers: TypeAlias = dict[str, AnswerValue]
"""Question id -> clean answer, in question order; only shown, answered questions; ready for JSON."""


# --- Definition -------------------------------------------------------------------------------------


class QuestionType(StrEnum):
    TEXT = "text"
    SINGLE_CHOICE = "single_choice"
    MULTI_CHOICE = "multi_choice"
    YES_NO = "yes_no"
    NUMBER = "number"
    DATE = "date"


CHOICE_TYPES: Final = frozenset({QuestionType.SINGLE_CHOICE, QuestionType.MULTI_CHOICE})
CONDITION_TARGET_TYPES: Final = CHOICE_TYPES | {QuestionType.YES_NO}
"""Only answers from a closed set can drive a condition; free text and numbers cannot be matched reliably."""


class _Frozen(BaseModel):
    # extra="forbid": a misspelt key in a definition file ("requried") must fail, not be ignored.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Choice(_Frozen):
    value: Annotated[StrictStr, Field(pattern=CHOICE_VALUE_PATTERN)]
    """Stored in the answers; stable across versions so statistics can compare them."""
    label: NonEmptyText
    """Shown to the patient and in the journal (Norwegian bokmål)."""


class Condition(_Frozen):
    """Show a question only when an earlier answer has a given value.

    ``equals`` is a choice value (or ``true``/``false`` for a yes/no question); ``any_of`` lists choice
    values. For a multi-choice target the condition holds when the selection contains the value (any of
    the values). Exactly one of the two is given.
    """

    question: Slug
    equals: StrictStr | StrictBool | None = None
    any_of: list[StrictStr] | None = None

    @model_validator(mode="after")
    def _exactly_one_test(self) -> Self:
        if (self.equals is None) == (self.any_of is None):
            raise ValueError(f"condition on {self.question!r} needs exactly one of 'equals' and 'any_of'")
        if self.any_of is not None:
            if not self.any_of:
                raise ValueError(f"condition on {self.question!r}: 'any_of' is empty")
            if len(set(self.any_of)) != len(self.any_of):
                raise ValueError(f"condition on {self.question!r}: 'any_of' repeats a value")
        return self

    def holds(self, value: AnswerValue | None) -> bool:
        """Whether a (clean) answer to the target question satisfies the condition."""
        if value is None:
            return False
        wanted: Sequence[str | bool] = [self.equals] if self.equals is not None else (self.any_of or [])
        if isinstance(value, list):
            return any(item in value for item in wanted)
        return any(type(value) is type(item) and value == item for item in wanted)


class Question(_Frozen):
    id: Slug
    type: QuestionType
    text: NonEmptyText
    """The question as the patient reads it (Norwegian bokmål)."""
    help: NonEmptyText | None = None
    required: StrictBool = True
    choices: tuple[Choice, ...] = ()
    """For ``single_choice`` and ``multi_choice`` only, in the order shown."""
    min: Annotated[float | None, Field(strict=True)] = None
    max: Annotated[float | None, Field(strict=True)] = None
    integer: StrictBool = False
    """Number questions: whole numbers only (pain scale) rather than decimals (temperature)."""
    unit: NonEmptyText | None = None
    """Number questions: shown after the value in the journal ("38,5 °C")."""
    min_length: Annotated[StrictInt | None, Field(ge=1)] = None
    max_length: Annotated[StrictInt | None, Field(ge=1)] = None
    """Text questions; :data:`TEXT_MAX_LENGTH` when not given."""
    shown_if: Condition | None = None
    audience: Audience = "all"
    """``child``: only asked when the case is for the requester's child; ``self``: only for an adult
    asking for herself; ``all``: always."""

    @model_validator(mode="after")
    def _check_type_specific_fields(self) -> Self:
        problems: list[str] = []
        if self.type in CHOICE_TYPES:
            if len(self.choices) < 2:
                problems.append("a choice question needs at least two choices")
            repeated = _repeated(choice.value for choice in self.choices)
            if repeated:
                problems.append(f"choice values repeat: {', '.join(repeated)}")
        elif self.choices:
            problems.append(f"'choices' is only for single_choice and multi_choice, not {self.type}")
        if self.type is QuestionType.NUMBER:
            if self.min is not None and self.max is not None and self.min > self.max:
                problems.append(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        else:
            set_fields = [name for name in ("min", "max", "unit") if getattr(self, name) is not None]
            if self.integer:
                set_fields.append("integer")
            if set_fields:
                problems.append(f"{', '.join(set_fields)} only apply to number questions, not {self.type}")
        if self.type is QuestionType.TEXT:
            if self.min_length is not None and self.min_length > self.text_max_length:
                problems.append(f"'min_length' ({self.min_length}) is greater than the maximum length")
        elif self.min_length is not None or self.max_length is not None:
            problems.append(f"min_length/max_length only apply to text questions, not {self.type}")
        if problems:
            raise ValueError(f"question {self.id!r}: {'; '.join(problems)}")
        return self

    @property
    def text_max_length(self) -> int:
        return self.max_length if self.max_length is not None else TEXT_MAX_LENGTH

    def label_for(self, value: str) -> str:
        """The label of a choice value (the value itself if the definition does not know it)."""
        return next((choice.label for choice in self.choices if choice.value == value), value)


class Questionnaire(_Frozen):
    key: Slug
    version: Annotated[StrictInt, Field(ge=1)]
    title: NonEmptyText
    questions: tuple[Question, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        """Ids unique; every condition points to an *earlier* question (so there can be no cycle and one
        pass in order decides visibility) with values that question can actually have."""
        repeated = _repeated(question.id for question in self.questions)
        if repeated:
            raise ValueError(f"question ids repeat: {', '.join(repeated)}")
        earlier: dict[str, Question] = {}
        all_ids = {question.id for question in self.questions}
        for question in self.questions:
            if question.shown_if is not None:
                _check_condition(question, question.shown_if, earlier, all_ids)
            earlier[question.id] = question
        return self

    def question(self, question_id: str) -> Question:
        """The question with this id; ``KeyError`` if there is none."""
        for question in self.questions:
            if question.id == question_id:
                return question
        raise KeyError(question_id)


def _check_condition(
    question: Question, condition: Condition, earlier: Mapping[str, Question], all_ids: set[str]
) -> None:
    prefix = f"question {question.id!r}: shown_if"
    target = earlier.get(condition.question)
    if target is None:
        where = "a later question (or itself)" if condition.question in all_ids else "an unknown question"
        raise ValueError(
            f"{prefix} refers to {condition.question!r}, {where}; it must refer to an earlier one"
        )
    if target.type not in CONDITION_TARGET_TYPES:
        raise ValueError(
            f"{prefix} refers to {target.id!r}, a {target.type} question; "
            "only yes_no and choice questions can be conditions"
        )
    if target.type is QuestionType.YES_NO:
        if not isinstance(condition.equals, bool):
            raise ValueError(f"{prefix} on yes_no question {target.id!r} must be 'equals': true or false")
    else:
        values = [condition.equals] if condition.equals is not None else list(condition.any_of or [])
        known = {choice.value for choice in target.choices}
        unknown = [repr(value) for value in values if not isinstance(value, str) or value not in known]
        if unknown:
            raise ValueError(
                f"{prefix}: {', '.join(unknown)} is not a choice of {target.id!r} "
                f"(choices: {', '.join(sorted(known))})"
            )
    if target.audience != "all" and question.audience not in ("all", target.audience):
        raise ValueError(
            f"{prefix}: the question is for {question.audience!r} but {target.id!r} is only asked "
            f"for {target.audience!r}, so it would never be shown"
        )


def _repeated(items: Iterable[str]) -> list[str]:
    return sorted(item for item, count in Counter(items).items() if count > 1)


# --- Loading ----------------------------------------------------------------------------------------


class QuestionnaireNotFound(NotFound):
    """No definition with that key (and version). For a stored case this is a deployment error."""


class QuestionnaireDefinitionError(Exception):
    """A definition file is broken. Not a :class:`~core.errors.LegetimeError`: it is the platform's
    fault, not the user's, and must fail loudly at start-up or in tests."""


def _directory(directory: Path | None) -> Traversable:
    return (
        directory
        if directory is not None
        else resources.files("legetime.core.consultation").joinpath("questionnaires")
    )


def available_versions(key: str, *, directory: Path | None = None) -> list[int]:
    """The versions of ``key`` that exist, ascending (empty if none)."""
    root = _directory(directory)
    if not root.is_dir():
        return []
    versions = []
    for entry in root.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match and match["key"] == key:
            versions.append(int(match["version"]))
    return sorted(versions)


def load_questionnaire(
    key: str = "general", version: int | None = None, *, directory: Path | None = None
) -> Questionnaire:
    """The definition ``key`` in ``version`` (the newest when ``None``), from the package's
    ``questionnaires/`` or from ``directory``.

    Cached: definitions are immutable once published, and every answer save needs one. New cases should
    ask for the newest version and record it; existing cases ask for the version they recorded.
    """
    if version is None:
        version = _newest(key, directory)
    return _load(key, version, directory)


def _not_found(key: str, version: int | None) -> QuestionnaireNotFound:
    wanted = "" if version is None else f" versjon {version}"
    return QuestionnaireNotFound(f"Fant ikke spørreskjemaet «{key}»{wanted}.", field="questionnaire")


@lru_cache(maxsize=64)
def _newest(key: str, directory: Path | None) -> int:
    """Cached too, so "the newest" and "that version by number" are one and the same object."""
    versions = available_versions(key, directory=directory) if _SLUG.fullmatch(key) else []
    if not versions:
        raise _not_found(key, None)
    return versions[-1]


@lru_cache(maxsize=64)
def _load(key: str, version: int, directory: Path | None) -> Questionnaire:
    if not _SLUG.fullmatch(key) or version not in available_versions(key, directory=directory):
        raise _not_found(key, version)
    file = _directory(directory).joinpath(f"{key}.v{version}.json")
    try:
        questionnaire = Questionnaire.model_validate_json(file.read_bytes())
    except pydantic.ValidationError as exc:
        raise QuestionnaireDefinitionError(f"{file.name} is not a valid questionnaire: {exc}") from exc
    if (questionnaire.key, questionnaire.version) != (key, version):
        raise QuestionnaireDefinitionError(
            f"{file.name} declares key {questionnaire.key!r} version {questionnaire.version}; "
            f"the file name says key {key!r} version {version}"
        )
    return questionnaire


# --- Answers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerError:
    question_id: str
    code: ErrorCode
    message: str
    """For the patient (Norwegian bokmål)."""


class AnswersInvalid(ValidationError):
    """One or more answers need fixing; :attr:`errors` has one entry per question, in question order
    (unknown ids last), so a frontend can mark every field at once."""

    code = ErrorCode.ANSWERS_INVALID

    def __init__(self, errors: Sequence[AnswerError]) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} svar må rettes.", field="answers")


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Pass:
    visible: list[Question]
    clean: CleanAnswers
    errors: list[AnswerError]


def _shown_to(question: Question, *, for_child: bool) -> bool:
    if question.audience == "child":
        return for_child
    if question.audience == "self":
        return not for_child
    return True


def _walk(
    questionnaire: Questionnaire, answers: Mapping[str, Any], *, for_child: bool, partial: bool, today: date
) -> _Pass:
    """Decide visibility and clean the answers in one pass, in question order.

    Conditions are tested against *clean* answers of earlier questions: a hidden or invalid target has no
    clean answer, so its dependants are hidden too (the chain rule comes for free).
    """
    visible: list[Question] = []
    clean: CleanAnswers = {}
    errors: list[AnswerError] = []
    for question in questionnaire.questions:
        if not _shown_to(question, for_child=for_child):
            continue
        if question.shown_if is not None and not question.shown_if.holds(
            clean.get(question.shown_if.question)
        ):
            continue
        visible.append(question)
        try:
            value = _clean(question, answers.get(question.id), today)
        except _Invalid as problem:
            errors.append(AnswerError(question.id, ErrorCode.INVALID, problem.message))
            continue
        if value is not None:
            clean[question.id] = value
        elif question.required and not partial:
            errors.append(AnswerError(question.id, ErrorCode.REQUIRED, "Dette spørsmålet må besvares."))
    known = {question.id for question in questionnaire.questions}
    errors.extend(
        AnswerError(str(question_id), ErrorCode.INVALID, "Ukjent spørsmål.")
        for question_id in answers
        if question_id not in known
    )
    return _Pass(visible, clean, errors)


def _today() -> date:
    return datetime.now(DEFAULT_ZONE).date()


def visible_questions(
    questionnaire: Questionnaire, answers: Mapping[str, Any], *, for_child: bool
) -> list[Question]:
    """The questions to show now, in order, given the answers so far (invalid answers count as unanswered)."""
    return _walk(questionnaire, answers, for_child=for_child, partial=True, today=_today()).visible


def validate_answers(
    questionnaire: Questionnaire,
    answers: Mapping[str, Any],
    *,
    for_child: bool,
    partial: bool,
    today: date | None = None,
) -> CleanAnswers:
    """Check ``answers`` and return the clean ones to store.

    ``partial=True`` while the patient is still answering (missing answers are fine), ``partial=False``
    at submit (every shown, required question must be answered). ``None``, blank text and an empty
    selection count as "not answered". ``today`` (default: today in Europe/Oslo; pass ``ctx.today``)
    is the latest date a date answer may have.

    Raises :class:`AnswersInvalid` listing every problem.
    """
    result = _walk(
        questionnaire,
        answers,
        for_child=for_child,
        partial=partial,
        today=today if today is not None else _today(),
    )
    if result.errors:
        raise AnswersInvalid(result.errors)
    return result.clean


def _clean(question: Question, raw: Any, today: date) -> AnswerValue | None:
    """The clean value, ``None`` when unanswered, or :class:`_Invalid` with a message for the patient."""
    if raw is None:
        return None
    match question.type:
        case QuestionType.TEXT:
            return _clean_text(question, raw)
        case QuestionType.SINGLE_CHOICE:
            if not isinstance(raw, str) or raw not in {choice.value for choice in question.choices}:
                raise _Invalid("Velg ett av alternativene.")
            return raw
        case QuestionType.MULTI_CHOICE:
            return _clean_selection(question, raw)
        case QuestionType.YES_NO:
            if not isinstance(raw, bool):
                raise _Invalid("Svar ja eller nei.")
            return raw
        case QuestionType.NUMBER:
            return _clean_number(question, raw)
        case QuestionType.DATE:
            return _clean_date(raw, today)
    raise AssertionError(question.type)  # pragma: no cover - the match is exhaustive


def _clean_text(question: Question, raw: Any) -> str | None:
    if not isinstance(raw, str):
        raise _Invalid("Svaret må være tekst.")
    text = raw.strip()
    if not text:
        return None
    if len(text) > question.text_max_length:
        raise _Invalid(f"Svaret kan være høyst {question.text_max_length} tegn (nå {len(text)}).")
    if question.min_length is not None and len(text) < question.min_length:
        raise _Invalid(f"Svaret må være minst {question.min_length} tegn.")
    return text


def _clean_selection(question: Question, raw: Any) -> list[str] | None:
    if not isinstance(raw, list | tuple) or not all(isinstance(item, str) for item in raw):
        raise _Invalid("Velg blant alternativene.")
    if not raw:
        return None
    if len(set(raw)) != len(raw):
        raise _Invalid("Hvert alternativ kan bare velges én gang.")
    order = [choice.value for choice in question.choices]
    if not set(raw) <= set(order):
        raise _Invalid("Ett eller flere av svarene er ikke blant alternativene.")
    return [value for value in order if value in raw]  # the definition's order: stable for display


def _clean_number(question: Question, raw: Any) -> int | float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _Invalid("Svaret må være et tall.")
    value: int | float
    if question.integer:
        if isinstance(raw, float) and not raw.is_integer():
            raise _Invalid("Svaret må være et helt tall.")
        value = int(raw)
    else:
        value = float(raw)
    low, high = question.min, question.max
    too_low = low is not None and value < low
    too_high = high is not None and value > high
    if low is not None and high is not None and (too_low or too_high):
        raise _Invalid(f"Svaret må være mellom {_number(low)} og {_number(high)}.")
    if low is not None and too_low:
        raise _Invalid(f"Svaret må være minst {_number(low)}.")
    if high is not None and too_high:
        raise _Invalid(f"Svaret kan være høyst {_number(high)}.")
    return value


def _clean_date(raw: Any, today: date) -> str:
    if isinstance(raw, datetime) or not isinstance(raw, str | date):
        raise _Invalid("Oppgi en dato (ÅÅÅÅ-MM-DD).")
    if isinstance(raw, str):
        # date.fromisoformat also takes "20240131" and week dates; only the one format the API documents.
        if not _ISO_DATE.fullmatch(raw):
            raise _Invalid("Oppgi en dato (ÅÅÅÅ-MM-DD).")
        try:
            raw = date.fromisoformat(raw)
        except ValueError:
            raise _Invalid("Datoen finnes ikke.") from None
    if raw > today:
        raise _Invalid("Datoen kan ikke være fram i tid.")
    return raw.isoformat()


# --- Display ----------------------------------------------------------------------------------------


def answers_for_display(questionnaire: Questionnaire, answers: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(question text, answer in Norwegian) for every answered question, in question order — what the
    journal drafter and the clinician read. Takes clean (stored) answers; unanswered and unknown ids
    are left out."""
    lines: list[tuple[str, str]] = []
    for question in questionnaire.questions:
        value = answers.get(question.id)
        if value is None or value == "" or value == []:
            continue
        lines.append((question.text, _display(question, value)))
    return lines


def _display(question: Question, value: Any) -> str:
    match question.type:
        case QuestionType.YES_NO if isinstance(value, bool):
            return "Ja" if value else "Nei"
        case QuestionType.SINGLE_CHOICE if isinstance(value, str):
            return question.label_for(value)
        case QuestionType.MULTI_CHOICE if isinstance(value, list):
            return ", ".join(question.label_for(str(item)) for item in value)
        case QuestionType.NUMBER if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{_number(value)} {question.unit}" if question.unit else _number(value)
        case QuestionType.DATE if isinstance(value, str) and _ISO_DATE.fullmatch(value):
            return f"{value[8:10]}.{value[5:7]}.{value[0:4]}"
    return str(value)


def _number(value: float) -> str:
    """Norwegian notation: decimal comma, no trailing zeros (38,5; 7)."""
    return f"{value:.6f}".rstrip("0").rstrip(".").replace(".", ",")
