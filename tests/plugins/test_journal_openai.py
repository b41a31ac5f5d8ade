"""The ``openai`` journal drafter through the OpenAI SDK, against a local OpenAI-compatible server
(``tests/fakes/openai_chat.py``) that checks every request and refuses personal data: the request it sends,
the draft and its provenance, data minimisation, retries on 429 and 5xx, a model that hangs or is not
there, answers that are not the note, Azure's classic endpoint, and logs without content. The shared
journal contract runs it as well."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from legetime.core.platform.errors import ErrorCode, ProviderError, ProviderUnavailable
from legetime.core.platform.providers import Capability
from legetime.core.platform.providers.journal import JournalContext, JournalMessage, Provenance
from legetime.plugins.journal import openai_chat
from legetime.plugins.journal.openai_chat import OpenAIJournalDrafter, OpenAIJournalSettings
from legetime.plugins.journal.openai_chat.prompts import PROMPTS
from legetime.testing import build_provider
from legetime.testing.journal import FULL
from tests.fakes import openai_chat as fake_api
from tests.fakes.openai_chat import OpenAIChatFake
from tests.fakes.server import serve_fake
from tests.support import offered_specs, settings_for_fake

SPEC = next(spec for spec in offered_specs(Capability.JOURNAL) if spec.name == "openai")
NAMES = ("Kari Nordmann", "Emma")
PERSONAL = JournalContext(
    case_number="LT-2026-000777",
    patient_age_years=7,
    patient_sex="female",
    questionnaire=[
        ("Hva gjelder henvendelsen?", "Emma har hatt feber i to dager"),
        ("Fødselsnummer hvis du vil", "Hennes er 010190 12345, D-nummer 41019012345"),
        (
            "Andre opplysninger",
            "Mor heter Kari Nordmann (kari.nordmann@example.no), bor i Storgata 5, 0155 Oslo",
        ),
    ],
    messages=[
        JournalMessage(author_role="clinician", body="Hvordan kan jeg nå deg?"),
        JournalMessage(
            author_role="guardian",
            body="Ring 912 34 567 eller +47 41234567, jobb 0047 22 33 44 55, i Sverige +46 70 123 45 67. "
            "Min svenske personnummer er 19900101-1234 (900101+1234). Karis mobil: 98765432.",
        ),
    ],
    outcome="advice",
    known_names=NAMES,
)


@pytest.fixture
def fake() -> Iterator[OpenAIChatFake]:
    with serve_fake(OpenAIChatFake(forbidden_names=["Kari", "Nordmann", "Emma"])) as fake:
        yield fake


def drafter(fake: OpenAIChatFake, tmp_path: Path, **changes: Any) -> OpenAIJournalDrafter:
    settings = settings_for_fake(SPEC, fake, **({"max_retries": 1, "timeout_seconds": 5.0} | changes))
    provider: OpenAIJournalDrafter = build_provider(SPEC, tmp_path, settings)
    return provider


def test_registered() -> None:
    assert SPEC.settings_model is OpenAIJournalSettings
    assert not SPEC.test_only
    assert openai_chat.plugin_info()["description"]


# --- the request and the draft ------------------------------------------------------------------------


async def test_the_request_follows_the_api(fake: OpenAIChatFake, tmp_path: Path) -> None:
    await drafter(fake, tmp_path).draft(FULL)
    [request] = fake.requests
    body = request["body"]
    assert request["path"] == "/v1/chat/completions" and request["authorization"]
    assert body["model"] == fake.model
    assert body["max_completion_tokens"] == 1500 and "max_tokens" not in body
    assert body["temperature"] == 0
    system, user = body["messages"]
    assert system == {"role": "system", "content": PROMPTS["2026-11-v1"].system}
    assert user["role"] == "user"
    assert json.loads(user["content"]) == {
        "pasient": {"alder_ar": 34, "kjonn": "kvinne"},
        "sporreskjema": [
            {"sporsmal": "Hva gjelder henvendelsen?", "svar": "Svie ved vannlating"},
            {"sporsmal": "Hvor lenge har du hatt plagene?", "svar": "Tre dager"},
            {"sporsmal": "Har du feber?", "svar": "Nei"},
        ],
        "dialog": [
            {"fra": "lege", "tekst": "Har du blod i urinen?"},
            {"fra": "pasient", "tekst": "Nei, ikke som jeg har sett."},
        ],
        "legens_konklusjon": "Resept forskrevet",
    }
    # No case number, no date.
    assert FULL.case_number not in user["content"] and "2025" not in user["content"]
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert spec["name"] == "journalnotat" and spec["strict"] is True
    schema = spec["schema"]
    assert schema["additionalProperties"] is False
    assert (
        schema["required"]
        == ["kontaktarsak", "funn", "vurdering", "rad_og_plan"]
        == list(schema["properties"])
    )


async def test_the_draft_has_the_fixed_sections_and_the_answering_models_provenance(
    fake: OpenAIChatFake, tmp_path: Path
) -> None:
    draft = await drafter(fake, tmp_path).draft(FULL)
    assert draft.sections == {
        "Kontaktårsak": "Pasienten oppgir: Svie ved vannlating.",
        "Funn": "Tre dager; Nei",
        "Vurdering": "Resept forskrevet",
        "Råd/plan": "Ny kontakt ved forverring.",
    }
    assert draft.text.startswith("Kontaktårsak:\nPasienten oppgir")
    # The model the server says answered, not the alias asked for.
    assert draft.provenance == Provenance(
        drafter="openai", version="1", model="legetime-test-model-2026-11-01", prompt_version="2026-11-v1"
    )


async def test_an_empty_section_says_so_and_identifiers_in_the_answer_are_masked(
    fake: OpenAIChatFake, tmp_path: Path
) -> None:
    fake.note = {
        "kontaktarsak": "Ring 91234567.",
        "funn": " ",
        "vurdering": "Kari ok",
        "rad_og_plan": "Kontroll.",
    }
    draft = await drafter(fake, tmp_path).draft(PERSONAL)
    assert draft.sections["Kontaktårsak"] == "Ring [telefon]."
    assert draft.sections["Funn"] == "Ikke oppgitt."
    assert draft.sections["Vurdering"] == "[navn] ok"


# --- data minimisation --------------------------------------------------------------------------------


async def test_no_national_id_name_phone_or_address_reaches_the_model(
    fake: OpenAIChatFake, tmp_path: Path
) -> None:
    draft = await drafter(fake, tmp_path).draft(PERSONAL)
    assert fake.violations == []
    [sent] = fake.sent("user")
    for masked in ("[fødselsnummer]", "[personnummer]", "[telefon]", "[e-post]", "[adresse]", "[navn]"):
        assert masked in sent, masked
    for clear in ("12345", "Storgata", "example.no", "91234567", "912 34 567", "Kari", "Emma", "Nordmann"):
        assert clear not in sent, clear
    assert "Oslo" not in sent and "LT-2026" not in sent
    assert draft.sections  # drafted from the masked text


async def test_the_fake_refuses_personal_data_when_masking_is_off(
    fake: OpenAIChatFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard above can fail: without masking, the server sees (and refuses) what it must not."""
    monkeypatch.setattr(openai_chat.Minimiser, "mask", lambda self, text: text)
    with pytest.raises(ProviderError) as raised:
        await drafter(fake, tmp_path).draft(PERSONAL)
    assert not raised.value.retryable
    assert {"national_id", "swedish_id", "phone", "email", "name:0", "name:1", "name:2"} <= set(
        fake.violations
    )


# --- the model slow, overloaded or away -----------------------------------------------------------


async def test_a_429_is_retried_after_retry_after(fake: OpenAIChatFake, tmp_path: Path) -> None:
    fake.plan, fake.retry_after = [fake_api.RATE_LIMITED], "1"
    started = time.monotonic()
    draft = await drafter(fake, tmp_path).draft(FULL)
    assert draft.sections and len(fake.requests) == 2
    assert time.monotonic() - started >= 1.0


async def test_a_rate_limit_that_lasts_is_unavailable(fake: OpenAIChatFake, tmp_path: Path) -> None:
    fake.plan = [fake_api.RATE_LIMITED] * 3
    with pytest.raises(ProviderUnavailable) as raised:
        await drafter(fake, tmp_path, max_retries=2).draft(FULL)
    assert raised.value.code is ErrorCode.PROVIDER_UNAVAILABLE and raised.value.retryable
    assert len(fake.requests) == 3


async def test_out_of_quota_is_not_worth_waiting_for(fake: OpenAIChatFake, tmp_path: Path) -> None:
    fake.plan = [fake_api.OUT_OF_QUOTA] * 2
    with pytest.raises(ProviderError) as raised:
        await drafter(fake, tmp_path).draft(FULL)
    assert not isinstance(raised.value, ProviderUnavailable) and not raised.value.retryable


async def test_a_server_error_is_retried(fake: OpenAIChatFake, tmp_path: Path) -> None:
    fake.plan = [fake_api.SERVER_ERROR]
    assert (await drafter(fake, tmp_path).draft(FULL)).sections
    assert len(fake.requests) == 2


async def test_a_model_that_hangs_times_out_and_is_unavailable(fake: OpenAIChatFake, tmp_path: Path) -> None:
    fake.plan, fake.hang_seconds = [fake_api.HANG] * 2, 3.0
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        await drafter(fake, tmp_path, timeout_seconds=0.3, max_retries=1).draft(FULL)
    assert len(fake.requests) == 2  # the first try and one retry, each cut off at the timeout
    assert time.monotonic() - started < 2.5


async def test_no_server_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    settings = OpenAIJournalSettings(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", model="m", max_retries=0, timeout_seconds=2
    )
    with pytest.raises(ProviderUnavailable):
        await build_provider(SPEC, tmp_path, settings).draft(FULL)


async def test_a_wrong_key_is_refused_and_never_logged(fake: OpenAIChatFake, tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(ProviderError) as raised:
        await drafter(fake, tmp_path, api_key="sk-wrong-secret").draft(FULL)
    assert not raised.value.retryable and len(fake.requests) == 0  # refused before it was read
    assert [(e["event"], e["status"]) for e in logs] == [("journal.openai.failed", 401)]
    assert "sk-wrong-secret" not in repr(logs)


# --- answers that are not the note ------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [fake_api.NOT_THE_NOTE, fake_api.NOT_JSON_CONTENT, fake_api.NOT_JSON_BODY, fake_api.CUT_OFF],
)
async def test_an_answer_that_is_not_the_note_is_an_error(
    fake: OpenAIChatFake, tmp_path: Path, answer: str
) -> None:
    fake.plan = [answer]
    with pytest.raises(ProviderError) as raised:
        await drafter(fake, tmp_path).draft(FULL)
    assert raised.value.message == openai_chat.UNUSABLE and raised.value.retryable
    assert len(fake.requests) == 1  # a 200 is not retried


async def test_a_refusal_is_an_error(fake: OpenAIChatFake, tmp_path: Path) -> None:
    fake.plan = [fake_api.REFUSAL]
    with pytest.raises(ProviderError) as raised:
        await drafter(fake, tmp_path).draft(FULL)
    assert raised.value.message == openai_chat.REFUSED and not raised.value.retryable


# --- other servers ------------------------------------------------------------------------------------


async def test_azure_classic_deployment_endpoint(fake: OpenAIChatFake, tmp_path: Path) -> None:
    settings = OpenAIJournalSettings(
        azure_endpoint=fake.base_url,
        azure_api_version=fake.azure_api_version,
        azure_deployment=fake.model,
        api_key=fake.api_key,
        model="gpt-4o",
    )
    draft = await build_provider(SPEC, tmp_path, settings).draft(FULL)
    [request] = fake.requests
    assert request["path"] == f"/openai/deployments/{fake.model}/chat/completions"
    assert request["api_key_header"] and not request["authorization"]  # the key as api-key, no bearer
    assert draft.provenance.model == fake.answered_by


async def test_json_mode_and_the_older_token_field_for_other_servers(
    fake: OpenAIChatFake, tmp_path: Path
) -> None:
    provider = drafter(
        fake, tmp_path, structured_output="json_object", token_limit_field="max_tokens", temperature=None
    )
    assert (await provider.draft(FULL)).sections
    body = fake.requests[0]["body"]
    assert body["response_format"] == {"type": "json_object"}  # the fake wants "JSON" in a message: it is
    assert body["max_tokens"] == 1500 and "max_completion_tokens" not in body and "temperature" not in body


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"prompt_version": "2020-01-v9"}, "unknown prompt version"),
        ({"azure_endpoint": "https://x.openai.azure.com"}, "needs azure_api_version"),
        ({"azure_api_version": "2024-10-21"}, "need azure_endpoint"),
        (
            {
                "azure_endpoint": "https://x.openai.azure.com",
                "azure_api_version": "v",
                "base_url": "https://a/v1",
            },
            "not both",
        ),
        ({"base_url": "http://ollama.internal:11434/v1"}, "https"),
    ],
)
def test_settings_are_checked(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        OpenAIJournalSettings(api_key="k", model="m", **changes)


# --- logs -----------------------------------------------------------------------------------------------


async def test_logs_carry_ids_and_counts_never_content(
    fake: OpenAIChatFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDK's and httpx2's own debug logs too
    with structlog.testing.capture_logs() as logs:
        await drafter(fake, tmp_path).draft(PERSONAL)
    [event] = logs
    assert event["event"] == "journal.openai.drafted"
    assert event["completion_id"].startswith("chatcmpl-") and event["model"] == fake.answered_by
    assert event["prompt_tokens"] > 0 and event["completion_tokens"] > 0 and event["latency_ms"] >= 0
    everything = repr(logs) + caplog.text
    for content in ("feber", "Emma", "Kari", "12345", "masked", "Storgata", "Pasienten oppgir", fake.api_key):
        assert content not in everything, content
