"""The questionnaire engine: definitions are data checked at load; answers are checked per question."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from legetime.core.consultation.questionnaire import (
    TEXT_MAX_LENGTH,
    AnswerError,
    AnswersInvalid,
    Question,
    Questionnaire,
    QuestionnaireDefinitionError,
    QuestionnaireNotFound,
    QuestionType,
    answers_for_display,
    available_versions,
    load_questionnaire,
    validate_answers,
    visible_questions,
)
from legetime.core.platform.errors import ErrorCode, NotFound, ValidationError

TODAY = date(2025, 3, 5)

ABC_CHOICES = [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}, {"value": "c", "label": "C"}]


def make(*questions: dict[str, Any], key: str = "test", version: int = 1) -> Questionnaire:
    return Questionnaire.model_validate(
        {"key": key, "version": version, "title": "Test", "questions": questions}
    )


def q(qid: str, qtype: str, **extra: Any) -> dict[str, Any]:
    """A question dict; choice types get three choices a/b/c unless given."""
    question: dict[str, Any] = {"id": qid, "type": qtype, "text": f"Spørsmål {qid}?", **extra}
    if qtype in ("single_choice", "multi_choice"):
        question.setdefault("choices", ABC_CHOICES)
    return question


def check(
    questionnaire: Questionnaire,
    answers: Mapping[str, Any],
    *,
    for_child: bool = False,
    partial: bool = False,
) -> dict[str, Any]:
    return validate_answers(questionnaire, answers, for_child=for_child, partial=partial, today=TODAY)


def problems(
    questionnaire: Questionnaire,
    answers: Mapping[str, Any],
    *,
    for_child: bool = False,
    partial: bool = False,
) -> list[tuple[str, ErrorCode]]:
    """(question id, code) for every error, in the order reported."""
    with pytest.raises(AnswersInvalid) as caught:
        check(questionnaire, answers, for_child=for_child, partial=partial)
    return [(error.question_id, error.code) for error in caught.value.errors]


def ids(questions: list[Question]) -> list[str]:
    return [question.id for question in questions]


def write(directory: Path, key: str, version: int, *, questions: list[dict[str, Any]] | None = None) -> Path:
    path = directory / f"{key}.v{version}.json"
    body = {
        "key": key,
        "version": version,
        "title": f"{key} v{version}",
        "questions": questions or [q("qa", "text")],
    }
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


# --- The shipped definition -------------------------------------------------------------------------


ADULT_COMPLETE: dict[str, Any] = {
    "main_complaint": "  Svie når jeg tisser, og må tisse ofte.  ",
    "duration": "1_3_days",
    "symptoms": ["painful_urination"],
    "fever": False,
    "pain": 3,
    "seen_doctor_before": False,
    "regular_medication": True,
    "medication_list": "Levaxin 50 mikrogram daglig",
    "allergies": False,
    "pregnant": False,
}

CHILD_COMPLETE: dict[str, Any] = {
    "main_complaint": "Øreverk siden i går kveld",
    "duration": "less_than_1_day",
    "fever": True,
    "temperature": 38.9,
    "pain": 6,
    "seen_doctor_before": False,
    "regular_medication": False,
    "allergies": False,
    "child_weight": 14.5,
    "child_vaccinated": True,
    "child_eats_drinks": True,
}


def test_the_shipped_definition_loads_and_is_the_newest_general() -> None:
    general = load_questionnaire()
    assert (general.key, general.version) == ("general", 1)
    assert available_versions("general") == [1]
    assert load_questionnaire("general", 1) is general  # cached
    assert 12 <= len(general.questions) <= 18
    assert general.title.strip()


def test_the_shipped_definition_has_every_question_type_and_both_variants() -> None:
    general = load_questionnaire()
    assert {question.type for question in general.questions} == set(QuestionType)
    assert {question.audience for question in general.questions} == {"all", "self", "child"}
    assert general.question("pregnant").audience == "self"
    assert general.question("child_weight").audience == "child"
    assert general.question("temperature").shown_if is not None
    assert [choice.label for choice in general.question("duration").choices] == [
        "Under 1 dag",
        "1–3 dager",
        "4–7 dager",
        "1–4 uker",
        "Mer enn 4 uker",
    ]


def test_the_shipped_definition_asks_adults_and_children_different_questions() -> None:
    general = load_questionnaire()
    adult = ids(visible_questions(general, {}, for_child=False))
    child = ids(visible_questions(general, {}, for_child=True))
    assert "pregnant" in adult and "pregnant" not in child
    assert {"child_weight", "child_vaccinated", "child_eats_drinks"} <= set(child)
    assert not {"child_weight", "child_vaccinated", "child_eats_drinks"} & set(adult)
    assert "temperature" not in adult  # only after "fever: yes"
    assert "temperature" in ids(visible_questions(general, {"fever": True}, for_child=False))


def test_complete_answers_to_the_shipped_definition_can_be_submitted() -> None:
    general = load_questionnaire()
    adult = check(general, ADULT_COMPLETE)
    assert adult["main_complaint"] == "Svie når jeg tisser, og må tisse ofte."
    assert adult["pain"] == 3 and isinstance(adult["pain"], int)
    child = check(general, CHILD_COMPLETE, for_child=True)
    assert child["child_weight"] == 14.5
    assert list(child) == [question.id for question in general.questions if question.id in child]


def test_the_shipped_definition_refuses_an_incomplete_submission() -> None:
    general = load_questionnaire()
    missing = {"main_complaint", "duration", "fever", "pain", "seen_doctor_before", "regular_medication"}
    missing |= {"allergies", "pregnant"}
    assert set(problems(general, {})) == {(qid, ErrorCode.REQUIRED) for qid in missing}


# --- Loading and versions ---------------------------------------------------------------------------


def test_the_newest_version_is_chosen_numerically(tmp_path: Path) -> None:
    for version in (1, 2, 10):
        write(tmp_path, "intake", version)
    write(tmp_path, "other", 99)
    (tmp_path / "intake.json").write_text("{}")  # no version: ignored
    (tmp_path / "intake.v3.json.bak").write_text("{}")  # not a definition: ignored
    assert available_versions("intake", directory=tmp_path) == [1, 2, 10]
    assert load_questionnaire("intake", directory=tmp_path).version == 10
    assert load_questionnaire("intake", 2, directory=tmp_path).version == 2
    assert load_questionnaire("intake", 1, directory=tmp_path).title == "intake v1"


@pytest.mark.parametrize(
    ("key", "version"),
    [("intake", 3), ("nothing", None), ("../intake", None), ("Intake", 1), ("intake", 0)],
)
def test_a_missing_definition_is_not_found(tmp_path: Path, key: str, version: int | None) -> None:
    write(tmp_path, "intake", 1)
    with pytest.raises(QuestionnaireNotFound) as caught:
        load_questionnaire(key, version, directory=tmp_path)
    assert isinstance(caught.value, NotFound)
    assert caught.value.code is ErrorCode.NOT_FOUND


def test_a_missing_directory_has_no_definitions(tmp_path: Path) -> None:
    assert available_versions("general", directory=tmp_path / "nowhere") == []
    with pytest.raises(QuestionnaireNotFound):
        load_questionnaire(directory=tmp_path / "nowhere")


def test_the_file_name_must_agree_with_the_content(tmp_path: Path) -> None:
    path = write(tmp_path, "intake", 2)
    path.rename(tmp_path / "intake.v3.json")
    with pytest.raises(
        QuestionnaireDefinitionError, match=r"intake\.v3\.json declares key 'intake' version 2"
    ):
        load_questionnaire("intake", directory=tmp_path)


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ([q("qa", "text"), q("qa", "yes_no")], "question ids repeat: qa"),
        (
            [q("qb", "text", shown_if={"question": "qa", "equals": True}), q("qa", "yes_no")],
            "shown_if refers to 'qa', a later question",
        ),
        (
            [q("qa", "single_choice"), q("qb", "text", shown_if={"question": "qa", "equals": "x"})],
            "'x' is not a choice of 'qa'",
        ),
    ],
    ids=["duplicate-ids", "forward-condition", "bad-choice-value"],
)
def test_a_broken_file_fails_at_load_naming_file_and_problem(
    tmp_path: Path, questions: list[dict[str, Any]], message: str
) -> None:
    write(tmp_path, "broken", 1, questions=questions)
    with pytest.raises(QuestionnaireDefinitionError, match=r"broken\.v1\.json") as caught:
        load_questionnaire("broken", directory=tmp_path)
    assert message in str(caught.value)


def test_a_file_that_is_not_json_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "broken.v1.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(QuestionnaireDefinitionError, match=r"broken\.v1\.json"):
        load_questionnaire("broken", directory=tmp_path)


# --- Definition rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ([q("qa", "single_choice", choices=[])], "at least two choices"),
        ([q("qa", "multi_choice", choices=[{"value": "a", "label": "A"}])], "at least two choices"),
        (
            [q("qa", "single_choice", choices=[{"value": "x", "label": "X"}, {"value": "x", "label": "Y"}])],
            "choice values repeat: x",
        ),
        ([q("qa", "text", choices=ABC_CHOICES)], "'choices' is only for single_choice and multi_choice"),
        ([q("qa", "text", min=1)], "only apply to number questions"),
        ([q("qa", "yes_no", integer=True)], "only apply to number questions"),
        ([q("qa", "number", min=10, max=1)], "'min' (10.0) is greater than 'max' (1.0)"),
        ([q("qa", "number", max_length=10)], "only apply to text questions"),
        ([q("qa", "text", min_length=50, max_length=10)], "'min_length' (50) is greater"),
        ([q("qa", "text", requried=False)], "Extra inputs are not permitted"),
        ([q("A-1", "text")], "String should match pattern"),
        ([q("qa", "text", text="   ")], "String should match pattern"),
        ([q("qa", "text", audience="adult")], "Input should be 'all', 'self' or 'child'"),
        (
            [
                q(
                    "a",
                    "single_choice",
                    choices=[{"value": "Ja!", "label": "Ja"}, {"value": "nei", "label": "Nei"}],
                )
            ],
            "pattern",
        ),
        ([], "at least 1 item"),
        (
            [q("qa", "yes_no"), q("qb", "text", shown_if={"question": "qa"})],
            "exactly one of 'equals' and 'any_of'",
        ),
        (
            [
                q("qa", "single_choice"),
                q("qb", "text", shown_if={"question": "qa", "equals": "a", "any_of": ["b"]}),
            ],
            "exactly one of 'equals' and 'any_of'",
        ),
        (
            [q("qa", "single_choice"), q("qb", "text", shown_if={"question": "qa", "any_of": []})],
            "'any_of' is empty",
        ),
        (
            [q("qa", "single_choice"), q("qb", "text", shown_if={"question": "qa", "any_of": ["a", "a"]})],
            "'any_of' repeats a value",
        ),
        ([q("qa", "text", shown_if={"question": "qa", "equals": True})], "a later question (or itself)"),
        (
            [q("qa", "yes_no"), q("qb", "text", shown_if={"question": "zz", "equals": True})],
            "an unknown question",
        ),
        (
            [q("qa", "text"), q("qb", "text", shown_if={"question": "qa", "equals": "x"})],
            "only yes_no and choice",
        ),
        (
            [q("qa", "yes_no"), q("qb", "text", shown_if={"question": "qa", "equals": "ja"})],
            "must be 'equals': true",
        ),
        (
            [q("qa", "yes_no"), q("qb", "text", shown_if={"question": "qa", "any_of": ["x"]})],
            "must be 'equals': true",
        ),
        (
            [q("qa", "single_choice"), q("qb", "text", shown_if={"question": "qa", "equals": True})],
            "True is not a choice",
        ),
        (
            [q("qa", "multi_choice"), q("qb", "text", shown_if={"question": "qa", "any_of": ["a", "z"]})],
            "'z' is not a choice of 'qa'",
        ),
        (
            [
                q("qa", "yes_no", audience="child"),
                q("qb", "text", audience="self", shown_if={"question": "qa", "equals": True}),
            ],
            "would never be shown",
        ),
    ],
)
def test_definition_errors_are_caught_with_a_clear_message(
    questions: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        make(*questions)
    assert message in str(caught.value)


def test_the_version_must_be_positive() -> None:
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 1"):
        make(q("qa", "text"), version=0)


def test_a_definition_cannot_be_changed_after_load() -> None:
    general = load_questionnaire()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        general.questions[0].required = False  # type: ignore[misc]
    assert isinstance(general.questions, tuple)


# --- Answers, one type at a time --------------------------------------------------------------------


TYPES = make(
    q("txt", "text", required=False),
    q("short", "text", required=False, min_length=3, max_length=10),
    q("one", "single_choice", required=False),
    q("many", "multi_choice", required=False),
    q("yn", "yes_no", required=False),
    q("dec", "number", required=False, min=34, max=43, unit="°C"),
    q("whole", "number", required=False, min=0, max=10, integer=True),
    q("open", "number", required=False),
    q("when", "date", required=False),
)


@pytest.mark.parametrize(
    ("qid", "raw", "clean"),
    [
        ("txt", "  Vondt i halsen \n", "Vondt i halsen"),
        ("txt", "x" * TEXT_MAX_LENGTH, "x" * TEXT_MAX_LENGTH),
        ("short", "abc", "abc"),
        ("short", "  abcdefghij  ", "abcdefghij"),
        ("one", "b", "b"),
        ("many", ["a"], ["a"]),
        ("many", ["c", "a"], ["a", "c"]),  # stored in the definition's order
        ("many", ("b", "c"), ["b", "c"]),
        ("yn", True, True),
        ("yn", False, False),
        ("dec", 38.5, 38.5),
        ("dec", 38, 38.0),
        ("dec", 34, 34.0),
        ("dec", 43, 43.0),
        ("whole", 0, 0),
        ("whole", 10, 10),
        ("whole", 7.0, 7),
        ("open", -1e9, -1e9),
        ("when", "2025-03-05", "2025-03-05"),  # today
        ("when", "2024-02-29", "2024-02-29"),
        ("when", date(2020, 1, 31), "2020-01-31"),
    ],
)
def test_valid_answers_are_cleaned(qid: str, raw: Any, clean: Any) -> None:
    result = check(TYPES, {qid: raw}, partial=True)
    assert result == {qid: clean}
    assert type(result[qid]) is type(clean)


@pytest.mark.parametrize(
    ("qid", "raw", "message"),
    [
        ("txt", 42, "Svaret må være tekst."),
        ("txt", ["tekst"], "Svaret må være tekst."),
        ("txt", "x" * (TEXT_MAX_LENGTH + 1), f"høyst {TEXT_MAX_LENGTH} tegn"),
        ("short", "ab", "minst 3 tegn"),
        ("short", "abcdefghijk", "høyst 10 tegn"),
        ("one", "z", "Velg ett av alternativene."),
        ("one", "A", "Velg ett av alternativene."),  # values, not labels
        ("one", ["a"], "Velg ett av alternativene."),
        ("one", True, "Velg ett av alternativene."),
        ("many", "a", "Velg blant alternativene."),
        ("many", [1], "Velg blant alternativene."),
        ("many", {"a": True}, "Velg blant alternativene."),
        ("many", ["a", "a"], "bare velges én gang"),
        ("many", ["a", "z"], "ikke blant alternativene"),
        ("yn", "ja", "Svar ja eller nei."),
        ("yn", 1, "Svar ja eller nei."),
        ("yn", "true", "Svar ja eller nei."),
        ("dec", "38,5", "Svaret må være et tall."),
        ("dec", True, "Svaret må være et tall."),
        ("dec", float("nan"), "Svaret må være et tall."),
        ("dec", float("inf"), "Svaret må være et tall."),
        ("dec", 33.9, "mellom 34 og 43"),
        ("dec", 43.01, "mellom 34 og 43"),
        ("whole", 7.5, "helt tall"),
        ("whole", 11, "mellom 0 og 10"),
        ("whole", -1, "mellom 0 og 10"),
        ("when", "2025-03-06", "fram i tid"),
        ("when", date(2030, 1, 1), "fram i tid"),
        ("when", "05.03.2025", "ÅÅÅÅ-MM-DD"),
        ("when", "20250305", "ÅÅÅÅ-MM-DD"),
        ("when", "2025-W10-3", "ÅÅÅÅ-MM-DD"),
        ("when", "2025-02-29", "Datoen finnes ikke."),
        ("when", "2025-13-01", "Datoen finnes ikke."),
        ("when", datetime(2025, 1, 1, 12, 0), "ÅÅÅÅ-MM-DD"),
        ("when", 20250305, "ÅÅÅÅ-MM-DD"),
    ],
)
def test_invalid_answers_are_reported_for_their_question(qid: str, raw: Any, message: str) -> None:
    for partial in (True, False):
        with pytest.raises(AnswersInvalid) as caught:
            check(TYPES, {qid: raw}, partial=partial)
        [error] = caught.value.errors
        assert (error.question_id, error.code) == (qid, ErrorCode.INVALID)
        assert message in error.message


def test_bounds_are_explained_when_only_one_side_is_set() -> None:
    bounded = make(q("low", "number", min=0.5, required=False), q("high", "number", max=150, required=False))
    with pytest.raises(AnswersInvalid) as caught:
        check(bounded, {"low": 0.25, "high": 151})
    assert [error.message for error in caught.value.errors] == [
        "Svaret må være minst 0,5.",
        "Svaret kan være høyst 150.",
    ]


@pytest.mark.parametrize("blank", [None, "", "   \n\t", [], ()])
def test_blank_answers_count_as_not_answered(blank: Any) -> None:
    questionnaire = make(q("txt", "text"), q("many", "multi_choice"))
    key = "many" if isinstance(blank, list | tuple) else "txt"
    assert check(questionnaire, {key: blank}, partial=True) == {}
    assert (key, ErrorCode.REQUIRED) in problems(questionnaire, {key: blank})


# --- Required, all problems at once, unknown ids ----------------------------------------------------


def test_required_is_only_enforced_at_submit() -> None:
    questionnaire = make(q("qa", "text"), q("qb", "yes_no"), q("qc", "text", required=False))
    assert check(questionnaire, {}, partial=True) == {}
    assert check(questionnaire, {"qb": False}, partial=True) == {"qb": False}
    assert problems(questionnaire, {}) == [("qa", ErrorCode.REQUIRED), ("qb", ErrorCode.REQUIRED)]
    assert check(questionnaire, {"qa": "Hodepine", "qb": False}) == {"qa": "Hodepine", "qb": False}


def test_every_problem_is_reported_in_question_order_with_unknown_ids_last() -> None:
    questionnaire = make(
        q("qa", "text"),
        q("qb", "yes_no"),
        q("qc", "number", min=0, max=10),
        q("qd", "single_choice"),
        q("qe", "date"),
        q("qf", "text", required=False),
    )
    answers = {"zz_unknown": "x", "qc": 11, "qb": "ja", "qe": "2099-01-01", "qd": "a", "another": 1}
    assert problems(questionnaire, answers) == [
        ("qa", ErrorCode.REQUIRED),
        ("qb", ErrorCode.INVALID),
        ("qc", ErrorCode.INVALID),
        ("qe", ErrorCode.INVALID),
        ("zz_unknown", ErrorCode.INVALID),
        ("another", ErrorCode.INVALID),
    ]
    assert problems(questionnaire, answers, partial=True) == [
        ("qb", ErrorCode.INVALID),
        ("qc", ErrorCode.INVALID),
        ("qe", ErrorCode.INVALID),
        ("zz_unknown", ErrorCode.INVALID),
        ("another", ErrorCode.INVALID),
    ]


def test_an_unknown_question_id_is_invalid_even_while_drafting() -> None:
    questionnaire = make(q("qa", "text"))
    with pytest.raises(AnswersInvalid) as caught:
        check(questionnaire, {"qa": "Vondt", "qb": "?"}, partial=True)
    assert caught.value.errors == [AnswerError("qb", ErrorCode.INVALID, "Ukjent spørsmål.")]


def test_the_error_is_a_validation_error_the_api_can_render() -> None:
    with pytest.raises(AnswersInvalid) as caught:
        check(make(q("qa", "text"), q("qb", "yes_no")), {})
    error = caught.value
    assert isinstance(error, ValidationError)
    assert error.code is ErrorCode.ANSWERS_INVALID
    assert error.field == "answers"
    assert error.message == "2 svar må rettes."
    assert all(item.message == "Dette spørsmålet må besvares." for item in error.errors)


# --- Conditions -------------------------------------------------------------------------------------


CHAIN = make(
    q("smoker", "yes_no"),
    q("what", "single_choice", shown_if={"question": "smoker", "equals": True}),
    q("how_much", "number", min=0, max=100, shown_if={"question": "what", "any_of": ["a", "b"]}),
    q("note", "text"),
)


def test_a_chain_is_shown_step_by_step() -> None:
    assert ids(visible_questions(CHAIN, {}, for_child=False)) == ["smoker", "note"]
    assert ids(visible_questions(CHAIN, {"smoker": True}, for_child=False)) == ["smoker", "what", "note"]
    assert ids(visible_questions(CHAIN, {"smoker": True, "what": "c"}, for_child=False)) == [
        "smoker",
        "what",
        "note",
    ]
    assert ids(visible_questions(CHAIN, {"smoker": True, "what": "b"}, for_child=False)) == [
        "smoker",
        "what",
        "how_much",
        "note",
    ]


def test_hiding_a_parent_hides_the_whole_chain_and_drops_its_answers() -> None:
    answers = {"smoker": False, "what": "b", "how_much": 10, "note": "Ingenting"}
    assert ids(visible_questions(CHAIN, answers, for_child=False)) == ["smoker", "note"]
    assert check(CHAIN, answers) == {"smoker": False, "note": "Ingenting"}
    assert check(CHAIN, answers, partial=True) == {"smoker": False, "note": "Ingenting"}


def test_answers_to_hidden_questions_are_dropped_without_being_checked() -> None:
    answers = {"smoker": False, "what": "not a choice", "how_much": "lots", "note": "Ingenting"}
    assert check(CHAIN, answers) == {"smoker": False, "note": "Ingenting"}


def test_a_shown_dependant_is_required_at_submit() -> None:
    assert problems(CHAIN, {"smoker": True, "what": "a", "note": "Hei"}) == [("how_much", ErrorCode.REQUIRED)]
    assert check(CHAIN, {"smoker": True, "what": "a", "how_much": 5, "note": "Hei"})["how_much"] == 5


def test_an_invalid_parent_hides_its_dependants_and_is_the_only_error() -> None:
    answers = {"smoker": "ja", "what": "a", "note": "Hei"}
    assert ids(visible_questions(CHAIN, answers, for_child=False)) == ["smoker", "note"]
    assert problems(CHAIN, answers) == [("smoker", ErrorCode.INVALID)]


def test_an_unanswered_parent_hides_its_dependants() -> None:
    assert problems(CHAIN, {"what": "a", "how_much": 5, "note": "Hei"}) == [("smoker", ErrorCode.REQUIRED)]
    assert check(CHAIN, {"what": "a", "how_much": 5}, partial=True) == {}


def test_a_multi_choice_condition_holds_when_the_selection_contains_a_value() -> None:
    questionnaire = make(
        q("symptoms", "multi_choice", required=False),
        q("about_a", "text", shown_if={"question": "symptoms", "equals": "a"}),
        q("about_b_or_c", "text", shown_if={"question": "symptoms", "any_of": ["b", "c"]}),
    )

    def shown(selection: list[str]) -> list[str]:
        return ids(visible_questions(questionnaire, {"symptoms": selection}, for_child=False))[1:]

    assert shown([]) == []
    assert shown(["a"]) == ["about_a"]
    assert shown(["c", "a"]) == ["about_a", "about_b_or_c"]
    assert shown(["b"]) == ["about_b_or_c"]


def test_a_yes_no_condition_on_false_is_not_met_by_a_missing_answer() -> None:
    questionnaire = make(
        q("ok", "yes_no", required=False), q("why_not", "text", shown_if={"question": "ok", "equals": False})
    )
    assert ids(visible_questions(questionnaire, {}, for_child=False)) == ["ok"]
    assert ids(visible_questions(questionnaire, {"ok": False}, for_child=False)) == ["ok", "why_not"]
    assert ids(visible_questions(questionnaire, {"ok": 0}, for_child=False)) == ["ok"]  # 0 is not False


# --- Child and adult variants -----------------------------------------------------------------------


VARIANTS = make(
    q("complaint", "text"),
    q("pregnant", "yes_no", audience="self"),
    q("weight", "number", min=0.5, max=150, audience="child"),
    q("vaccinated", "yes_no", audience="child"),
    q("which", "text", audience="all", shown_if={"question": "vaccinated", "equals": False}),
)


def test_child_questions_are_asked_only_for_a_child_and_self_questions_only_for_an_adult() -> None:
    assert ids(visible_questions(VARIANTS, {}, for_child=False)) == ["complaint", "pregnant"]
    assert ids(visible_questions(VARIANTS, {}, for_child=True)) == ["complaint", "weight", "vaccinated"]
    assert problems(VARIANTS, {}, for_child=False) == [
        ("complaint", ErrorCode.REQUIRED),
        ("pregnant", ErrorCode.REQUIRED),
    ]
    assert problems(VARIANTS, {"complaint": "Feber"}, for_child=True) == [
        ("weight", ErrorCode.REQUIRED),
        ("vaccinated", ErrorCode.REQUIRED),
    ]


def test_switching_between_self_and_child_drops_the_other_variants_answers() -> None:
    answers = {
        "complaint": "Feber",
        "pregnant": True,
        "weight": 12,
        "vaccinated": False,
        "which": "MMR mangler",
    }
    assert check(VARIANTS, answers, for_child=True) == {
        "complaint": "Feber",
        "weight": 12.0,
        "vaccinated": False,
        "which": "MMR mangler",
    }
    assert check(VARIANTS, answers, for_child=False) == {"complaint": "Feber", "pregnant": True}


# --- Display ----------------------------------------------------------------------------------------


def test_answers_are_displayed_in_norwegian_in_question_order() -> None:
    clean = check(
        TYPES,
        {
            "when": "2024-02-29",
            "yn": False,
            "txt": "Vondt i halsen",
            "many": ["c", "a"],
            "one": "b",
            "dec": 38.5,
            "whole": 7,
            "open": 2.25,
        },
        partial=True,
    )
    assert answers_for_display(TYPES, clean) == [
        ("Spørsmål txt?", "Vondt i halsen"),
        ("Spørsmål one?", "B"),
        ("Spørsmål many?", "A, C"),
        ("Spørsmål yn?", "Nei"),
        ("Spørsmål dec?", "38,5 °C"),
        ("Spørsmål whole?", "7"),
        ("Spørsmål open?", "2,25"),
        ("Spørsmål when?", "29.02.2024"),
    ]


def test_display_leaves_out_unanswered_and_unknown_questions() -> None:
    assert answers_for_display(TYPES, {}) == []
    assert answers_for_display(TYPES, {"yn": True, "gone": "x", "txt": ""}) == [("Spørsmål yn?", "Ja")]


def test_display_of_the_shipped_definition_reads_like_a_history() -> None:
    general = load_questionnaire()
    shown = answers_for_display(general, check(general, CHILD_COMPLETE, for_child=True))
    assert ("Hvor lenge har plagene vart?", "Under 1 dag") in shown
    assert ("Hvor høy var temperaturen sist du målte den?", "38,9 °C") in shown
    assert ("Hvor mye veier barnet?", "14,5 kg") in shown
    assert ("Har barnet fått vaksinene i barnevaksinasjonsprogrammet så langt?", "Ja") in shown


# --- Properties -------------------------------------------------------------------------------------

_WORD = "[A-Za-zÆØÅæøå0-9]"


def _valid_answer(question: Question) -> st.SearchStrategy[Any]:
    """Any answer the definition accepts for ``question`` (dates up to TODAY)."""
    values = [choice.value for choice in question.choices]
    strategies: dict[QuestionType, Callable[[], st.SearchStrategy[Any]]] = {
        QuestionType.TEXT: lambda: st.from_regex(
            rf"\s*{_WORD}[A-Za-zÆØÅæøå0-9 ,.?]{{1,60}}{_WORD}\s*", fullmatch=True
        ),
        QuestionType.SINGLE_CHOICE: lambda: st.sampled_from(values),
        QuestionType.MULTI_CHOICE: lambda: st.lists(st.sampled_from(values), min_size=1, unique=True),
        QuestionType.YES_NO: st.booleans,
        QuestionType.NUMBER: lambda: (
            st.integers(int(question.min or 0), int(question.max or 1000))
            if question.integer
            else st.floats(question.min, question.max, allow_nan=False, allow_infinity=False)
        ),
        QuestionType.DATE: lambda: st.dates(max_value=TODAY).map(date.isoformat),
    }
    return strategies[question.type]()


GENERAL = load_questionnaire()
ALL_VALID = {question.id: _valid_answer(question) for question in GENERAL.questions}


@settings(max_examples=200)
@given(answers=st.fixed_dictionaries({}, optional=ALL_VALID), for_child=st.booleans())
def test_any_subset_of_valid_answers_can_be_saved_as_a_draft(
    answers: dict[str, Any], for_child: bool
) -> None:
    clean = validate_answers(
        GENERAL, answers, for_child=for_child, partial=True, today=TODAY
    )  # never REQUIRED
    assert set(clean) <= set(answers)
    assert validate_answers(GENERAL, clean, for_child=for_child, partial=True, today=TODAY) == clean
    json.dumps(clean)  # storable as it is


@settings(max_examples=100)
@given(answers=st.fixed_dictionaries(ALL_VALID), for_child=st.booleans())
def test_answering_everything_can_be_submitted(answers: dict[str, Any], for_child: bool) -> None:
    clean = validate_answers(GENERAL, answers, for_child=for_child, partial=False, today=TODAY)
    assert list(clean) == ids(visible_questions(GENERAL, answers, for_child=for_child))
    assert len(answers_for_display(GENERAL, clean)) == len(clean)
