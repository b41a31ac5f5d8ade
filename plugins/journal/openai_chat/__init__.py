"""Journal drafts from a language model over the OpenAI Chat Completions API (journal provider ``openai``).

One client for every server that speaks the API: OpenAI, Azure OpenAI (its v1 API through ``base_url``, or
the classic deployment URLs with ``api-version`` and the ``api-key`` header through ``azure_endpoint``),
vLLM, Ollama and the like. Documentation followed: the Chat Completions API reference (``POST
/chat/completions``: ``model``, ``messages``, ``response_format``, ``max_completion_tokens``; the answer's
``model``, ``choices[].message.content``/``refusal``, ``finish_reason``, ``usage``), the Structured Outputs
guide (``response_format`` of type ``json_schema`` with ``strict``: every property required,
``additionalProperties`` false), the error codes and rate-limit guides (429 and 5xx are retried with
exponential backoff, honouring ``Retry-After``: the SDK does it, ``max_retries`` times), and Azure OpenAI's
REST reference (``/openai/deployments/{deployment}/chat/completions?api-version=…``, ``api-key`` header).

What is sent is minimised (see ``minimise``): the patient's age and sex, the questionnaire, the dialog and
the clinician's outcome, with identifiers and the names the platform knows masked in every string; never
the case number, the date, a name or a national ID. Requests and answers are never logged: the log has the
completion's id, the model, token counts, latency and error codes.

The model answers in a fixed structure (Kontaktårsak, Funn, Vurdering, Råd/plan), requested as a strict JSON
schema and validated on the way back; an answer that does not fit is a ``ProviderError`` and nothing is
stored. The draft's provenance names the model the server says answered and the prompt version.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import SettingsConfigDict

from legetime.plugins.journal.openai_chat.minimise import Minimiser
from legetime.plugins.journal.openai_chat.prompts import LATEST, PROMPTS, SECTIONS
from legetime.sdk import (
    Capability,
    HttpsUrl,
    JournalContext,
    JournalDraft,
    Provenance,
    ProviderCheck,
    ProviderContext,
    ProviderError,
    ProviderSettings,
    ProviderSpec,
    ProviderUnavailable,
    hookimpl,
)

# The SDK (and httpx2 behind it) is imported when a draft is made, not when the plugin is loaded: a default
# plugin whose provider is not enabled costs start-up nothing.
if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam
    from openai.types.chat.completion_create_params import ResponseFormat

__version__ = "1"

NAME = "openai"
UNAVAILABLE = "Språkmodellen svarer ikke akkurat nå. Prøv igjen om litt, eller skriv notatet selv."
REFUSED = "Språkmodellen avviste forespørselen, så oppsettet må sjekkes. Skriv notatet selv inntil videre."
UNUSABLE = "Språkmodellen ga et svar som ikke kunne brukes. Prøv igjen, eller skriv notatet selv."
NOT_GIVEN_TEXT = "Ikke oppgitt."
SCHEMA_NAME = "journalnotat"
MAX_MODEL_NAME = 100  # the width of the note's model column

SEXES = {"female": "kvinne", "male": "mann", "f": "kvinne", "k": "kvinne", "m": "mann"}
ROLES = {"patient": "pasient", "guardian": "foresatt", "clinician": "lege"}
OUTCOMES = {
    "advice": "Råd gitt",
    "physical_examination": "Henvist til fysisk undersøkelse",
    "prescription": "Resept forskrevet",
}

log = structlog.get_logger(__name__)


class OpenAIJournalSettings(ProviderSettings):
    """Settings of ``openai``, from ``LEGETIME_JOURNAL_OPENAI_*``."""

    model_config = SettingsConfigDict(env_prefix="LEGETIME_JOURNAL_OPENAI_")

    base_url: HttpsUrl = Field(
        default="https://api.openai.com/v1",
        description="The API's base URL, up to and including /v1: OpenAI https://api.openai.com/v1, Azure "
        "OpenAI's v1 API https://<resource>.openai.azure.com/openai/v1, vLLM or Ollama e.g. "
        "http://localhost:8000/v1 (plain http only on localhost). Not used with azure_endpoint.",
    )
    api_key: SecretStr = Field(
        description="The API key, sent as a bearer token (to Azure's classic endpoint as the api-key "
        "header). A server without authentication (Ollama, vLLM without --api-key) takes any value."
    )
    model: str = Field(
        min_length=1,
        description="The model to ask (with azure_endpoint and no azure_deployment: the deployment's "
        "name). The draft records the model the server says answered.",
    )
    prompt_version: str = Field(
        default=LATEST,
        description=f"Which of the plugin's prompt versions to use ({', '.join(PROMPTS)}); recorded with "
        "each draft.",
    )
    temperature: float | None = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        description="Sampling temperature; low keeps the draft close to what was said. Empty: not sent "
        "(for models that take only their default).",
    )
    max_tokens: int = Field(
        default=1500, gt=0, le=32768, description="The most tokens the model may write for one draft."
    )
    token_limit_field: Literal["max_completion_tokens", "max_tokens"] = Field(
        default="max_completion_tokens",
        description="The request field that carries max_tokens: max_completion_tokens (OpenAI, Azure, "
        "vLLM), or max_tokens for servers that know only the older field.",
    )
    structured_output: Literal["json_schema", "json_object"] = Field(
        default="json_schema",
        description="How the note's structure is asked for: json_schema (strict Structured Outputs), or "
        "json_object (JSON mode) for servers without JSON schemas. The answer is validated either way.",
    )
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="Timeout of one request (each retry has its own)."
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a request that timed out, could not connect, or got 408, 409, 429 or 5xx; "
        "with exponential backoff, or after Retry-After (up to 2 minutes) when the server sends it.",
    )
    azure_endpoint: HttpsUrl | None = Field(
        default=None,
        description="Azure OpenAI's classic endpoint, https://<resource>.openai.azure.com: requests go to "
        "/openai/deployments/<deployment>/chat/completions with api-version and the api-key header. Not "
        "needed for Azure's v1 API (use base_url).",
    )
    azure_api_version: str | None = Field(
        default=None, description="The api-version of the classic endpoint, e.g. 2024-10-21."
    )
    azure_deployment: str | None = Field(
        default=None, description="The deployment on the classic endpoint; default: model."
    )

    @field_validator("prompt_version")
    @classmethod
    def _known_prompt(cls, value: str) -> str:
        if value not in PROMPTS:
            raise ValueError(f"unknown prompt version {value!r}; known: {', '.join(PROMPTS)}")
        return value

    @model_validator(mode="after")
    def _azure(self) -> OpenAIJournalSettings:
        if self.azure_endpoint is None:
            if self.azure_api_version or self.azure_deployment:
                raise ValueError("azure_api_version and azure_deployment need azure_endpoint")
        elif not self.azure_api_version:
            raise ValueError("azure_endpoint needs azure_api_version")
        elif "base_url" in self.model_fields_set:
            raise ValueError("give either base_url or azure_endpoint, not both")
        return self


class _Message(BaseModel):
    content: str | None = None
    refusal: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Completion(BaseModel):
    """The parts of the API's chat completion object the drafter reads, checked as they came over the wire
    (the SDK's own models do not check what a server sent)."""

    id: str | None = None
    model: str | None = None
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


class NoteAnswer(BaseModel):
    """The model's answer: the note's sections, nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kontaktarsak: str
    funn: str
    vurdering: str
    rad_og_plan: str


assert tuple(NoteAnswer.model_fields) == tuple(section.key for section in SECTIONS)


def response_format(kind: str) -> ResponseFormat:
    if kind == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": SCHEMA_NAME,
            "description": "Utkast til journalnotat i faste seksjoner.",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    section.key: {"type": "string", "description": section.description}
                    for section in SECTIONS
                },
                "required": [section.key for section in SECTIONS],
                "additionalProperties": False,
            },
        },
    }


def consultation(context: JournalContext, minimiser: Minimiser) -> dict[str, Any]:
    """What the model is told of the consultation: minimised (see the module docstring)."""
    mask = minimiser.mask
    patient: dict[str, Any] = {"alder_ar": context.patient_age_years}
    if context.patient_sex:
        patient["kjonn"] = SEXES.get(context.patient_sex.lower(), mask(context.patient_sex))
    return {
        "pasient": patient,
        "sporreskjema": [
            {"sporsmal": mask(question), "svar": mask(answer) if answer.strip() else "(ikke besvart)"}
            for question, answer in context.questionnaire
        ],
        "dialog": [
            {"fra": ROLES.get(message.author_role, "ukjent"), "tekst": mask(message.body)}
            for message in context.messages
        ],
        "legens_konklusjon": (
            None if context.outcome is None else OUTCOMES.get(context.outcome, mask(context.outcome))
        ),
    }


class OpenAIJournalDrafter:
    """Implements ``legetime.sdk.JournalProvider`` with one chat completion per draft."""

    name = NAME

    def __init__(self, settings: OpenAIJournalSettings) -> None:
        self.settings = settings
        self.prompt = PROMPTS[settings.prompt_version]

    async def draft(self, context: JournalContext) -> JournalDraft:
        from openai import APIError

        minimiser = Minimiser(context.known_names)
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": self.prompt.system},
            {"role": "user", "content": json.dumps(consultation(context, minimiser), ensure_ascii=False)},
        ]
        started = time.monotonic()
        try:
            async with self._client() as client:
                body = await self._create(client, messages)
        except APIError as exc:
            raise _failure(exc, started) from None
        try:
            completion = Completion.model_validate_json(body)
        except PydanticValidationError:  # a proxy's error page, an object that is no chat completion
            raise _unusable(None, started, "not_a_completion") from None
        answer = self._answer(completion, started)
        log.info(
            "journal.openai.drafted",
            completion_id=completion.id,
            model=completion.model,
            prompt_version=self.prompt.version,
            prompt_tokens=completion.usage.prompt_tokens if completion.usage else None,
            completion_tokens=completion.usage.completion_tokens if completion.usage else None,
            latency_ms=_ms(started),
        )
        sections = {
            section.title: minimiser.mask(getattr(answer, section.key)).strip() or NOT_GIVEN_TEXT
            for section in SECTIONS
        }
        model = (completion.model or self.settings.model)[:MAX_MODEL_NAME]
        return JournalDraft(
            sections=sections,
            provenance=Provenance(
                drafter=NAME, version=__version__, model=model, prompt_version=self.prompt.version
            ),
        )

    async def check(self) -> ProviderCheck:
        """List the server's models (``GET /v1/models``; Azure's classic endpoint: ``GET /openai/models``)
        with the API key: read-only, never a completion, so nothing of a consultation is sent and nothing is
        billed. Then whether the configured model is among them (not on Azure's classic endpoint, whose
        deployments are not listed). No retries: an operator is waiting."""
        from openai import APIConnectionError, APIStatusError, APITimeoutError, AuthenticationError

        settings = self.settings
        try:
            async with self._client() as client:
                page = await client.with_options(max_retries=0).models.list()
        except AuthenticationError as exc:
            return ProviderCheck(
                False, f"The language model server refused the API key (HTTP {exc.status_code})."
            )
        except APIStatusError as exc:
            return ProviderCheck(False, f"The language model server answered HTTP {exc.status_code}.")
        except APITimeoutError:
            return ProviderCheck(
                False, f"The language model server did not answer within {settings.timeout_seconds:g} s."
            )
        except APIConnectionError:
            return ProviderCheck(False, "The language model server is unreachable.")
        if settings.azure_endpoint is not None:
            return ProviderCheck(True, "Azure OpenAI accepted the API key (the deployment is not checked).")
        if settings.model not in {model.id for model in page.data}:
            return ProviderCheck(
                False, f"The server accepted the API key, but does not list the model {settings.model!r}."
            )
        return ProviderCheck(
            True, f"The server accepted the API key and offers the model {settings.model!r}."
        )

    # --- Internals ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[AsyncOpenAI]:
        from openai import AsyncAzureOpenAI, AsyncOpenAI

        # One client per draft: drafts are made from several event loops (the workers', a test's), and an
        # HTTP client's connections belong to the loop that opened them.
        settings = self.settings
        key = settings.api_key.get_secret_value()
        client: AsyncOpenAI
        if settings.azure_endpoint is not None:
            client = AsyncAzureOpenAI(
                azure_endpoint=settings.azure_endpoint,
                azure_deployment=settings.azure_deployment or settings.model,
                api_version=settings.azure_api_version,
                api_key=key,
                timeout=settings.timeout_seconds,
                max_retries=settings.max_retries,
            )
        else:
            client = AsyncOpenAI(
                base_url=settings.base_url,
                api_key=key,
                timeout=settings.timeout_seconds,
                max_retries=settings.max_retries,
            )
        try:
            yield client
        finally:
            await client.close()

    async def _create(self, client: AsyncOpenAI, messages: list[ChatCompletionMessageParam]) -> bytes:
        """The answer's body, as sent: read here, not through the SDK's models (see ``Completion``)."""
        from openai import omit

        settings = self.settings
        limit = settings.max_tokens
        raw = await client.chat.completions.with_raw_response.create(
            model=settings.model,
            messages=messages,
            response_format=response_format(settings.structured_output),
            temperature=omit if settings.temperature is None else settings.temperature,
            max_completion_tokens=limit if settings.token_limit_field == "max_completion_tokens" else omit,
            max_tokens=limit if settings.token_limit_field == "max_tokens" else omit,
        )
        return raw.content

    def _answer(self, completion: Completion, started: float) -> NoteAnswer:
        """The note in the model's answer, or a ``ProviderError`` saying why there is none."""
        choice = completion.choices[0]
        if choice.finish_reason == "length":
            raise _unusable(completion, started, "length")
        if choice.message.refusal or choice.finish_reason == "content_filter":
            _log_failure(completion, started, "refused")
            raise ProviderError(REFUSED)
        try:
            return NoteAnswer.model_validate_json(choice.message.content or "")
        except PydanticValidationError:
            raise _unusable(completion, started, "invalid_answer") from None


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _log_failure(completion: Completion | None, started: float, reason: str) -> None:
    log.warning(
        "journal.openai.unusable_answer",
        completion_id=completion.id if completion else None,
        model=completion.model if completion else None,
        reason=reason,
        latency_ms=_ms(started),
    )


def _unusable(completion: Completion | None, started: float, reason: str) -> ProviderError:
    _log_failure(completion, started, reason)
    return ProviderError(UNUSABLE, retryable=True)


def _failure(exc: Exception, started: float) -> ProviderError:
    """The platform's error for one of the SDK's (after its retries); logged with codes only."""
    from openai import APIConnectionError, APIResponseValidationError, APIStatusError, RateLimitError

    status = exc.status_code if isinstance(exc, APIStatusError | APIResponseValidationError) else None
    code = getattr(exc, "code", None)
    log.warning(
        "journal.openai.failed",
        error=type(exc).__name__,
        status=status,
        code=code if isinstance(code, str) else None,
        request_id=getattr(exc, "request_id", None),
        latency_ms=_ms(started),
    )
    if isinstance(exc, APIResponseValidationError):  # a body that is no chat completion
        return ProviderError(UNUSABLE, retryable=True)
    if isinstance(exc, APIConnectionError) or status is None or status in (408, 409) or status >= 500:
        return ProviderUnavailable(UNAVAILABLE)
    if isinstance(exc, RateLimitError):
        # Out of quota does not pass by waiting; a rate limit does.
        return ProviderUnavailable(UNAVAILABLE) if code != "insufficient_quota" else ProviderError(REFUSED)
    return ProviderError(REFUSED)


# --- Plugin ----------------------------------------------------------------------------------------


def create_provider(settings: OpenAIJournalSettings, context: ProviderContext) -> OpenAIJournalDrafter:
    return OpenAIJournalDrafter(settings)


@hookimpl
def register_providers() -> Iterable[ProviderSpec]:
    return [
        ProviderSpec(
            capability=Capability.JOURNAL,
            name=NAME,
            factory=create_provider,
            settings_model=OpenAIJournalSettings,
            description="Drafts from a language model over the OpenAI Chat Completions API (OpenAI, Azure "
            "OpenAI, vLLM, Ollama); minimised input, strict JSON structure.",
        )
    ]


@hookimpl
def plugin_info() -> dict[str, str]:
    return {"description": "Journal drafts from an OpenAI-compatible chat completions API."}
