"""A local OpenAI-compatible chat completions server that keeps the documented contract, for the ``openai``
journal drafter's tests.

It enforces what the API enforces: the bearer key (Azure's classic deployment URL: the ``api-key`` header
and ``api-version``), the model (or deployment), the messages' shape, and ``response_format`` (a strict
``json_schema`` must require every property and forbid others; JSON mode needs the word JSON in a message);
``max_tokens`` and ``max_completion_tokens`` not both. Errors have the API's body, ``{"error": {"message",
"type", "param", "code"}}``.

And it guards the data minimisation: a request whose message text holds a national ID (Norwegian or
Swedish), a phone number, an e-mail address or one of ``forbidden_names`` is refused with 400, and the
finding is recorded in ``violations`` (what was found, never the value) for the test to assert on.

Controls for tests: ``plan`` the next answers — a 429 with ``Retry-After``, a 500, a hang past the client's
timeout, content that is not the note's JSON, a body that is not JSON, a refusal, a cut-off answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

NATIONAL_ID = re.compile(r"(?<!\d)\d{6}[ -]?\d{5}(?!\d)")
SWEDISH_ID = re.compile(r"(?<!\d)(?:19|20)?\d{6}[-+]?\d{4}(?!\d)")
PHONE = re.compile(r"(?:\+|(?<!\d)00)\d(?:[ -]?\d){6,14}|(?<![\d+])[2-9]\d(?:[ -]?\d){6}(?!\d)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ROLES = {"system", "developer", "user", "assistant"}

OK = "ok"
RATE_LIMITED = "rate_limited"
OUT_OF_QUOTA = "out_of_quota"
SERVER_ERROR = "server_error"
HANG = "hang"
NOT_THE_NOTE = "not_the_note"  # content that is JSON, but not the note's
NOT_JSON_CONTENT = "not_json_content"
NOT_JSON_BODY = "not_json_body"
REFUSAL = "refusal"
CUT_OFF = "cut_off"


def _error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None) -> Any:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status
    )


@dataclass
class OpenAIChatFake:
    api_key: str = "sk-fake-legetime"
    model: str = "legetime-test-model"
    answered_by: str = "legetime-test-model-2026-11-01"
    """The model the answers name (a server answers with the exact snapshot it used)."""
    azure_api_version: str = "2024-10-21"
    base_url: str = ""
    forbidden_names: list[str] = field(default_factory=list)
    retry_after: str = "0"
    """Retry-After of a 429 (seconds)."""
    hang_seconds: float = 2.0
    note: dict[str, Any] | None = None
    """The note to answer with instead of the one built from the request."""
    plan: list[str] = field(default_factory=list)
    """The next requests' answers, first first; then ``ok``."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    model_listings: int = 0
    """How many times the models were listed (``GET /v1/models``)."""

    def plugin_settings(self) -> dict[str, str]:
        return {"BASE_URL": f"{self.base_url}/v1", "API_KEY": self.api_key, "MODEL": self.model}

    def sent(self, role: str = "user") -> list[str]:
        """The text of every message of ``role`` that reached the model."""
        return [
            str(message["content"])
            for request in self.requests
            for message in request["body"].get("messages", [])
            if message.get("role") == role
        ]

    # --- The app ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/openai/models", self._azure_models, methods=["GET"]),
                Route("/openai/deployments/{deployment}/chat/completions", self._azure, methods=["POST"]),
            ]
        )

    def _model_list(self) -> Response:
        """``GET /v1/models``: the models the key may use (read-only), as OpenAI lists them."""
        self.model_listings += 1
        names = dict.fromkeys([self.model, self.answered_by])
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 1767225600, "owned_by": "legetime-test"}
                    for name in names
                ],
            }
        )

    async def _models(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return self._model_list()

    async def _azure_models(self, request: Request) -> Response:
        if request.headers.get("api-key") != self.api_key:
            return _error(
                401, "Access denied due to invalid subscription key.", "invalid_request_error", "401"
            )
        if request.query_params.get("api-version") != self.azure_api_version:
            return _error(404, "Resource not found", "invalid_request_error", "404")
        return self._model_list()

    async def _openai(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return await self._complete(request, deployment=None)

    async def _azure(self, request: Request) -> Response:
        if request.headers.get("api-key") != self.api_key:
            return _error(
                401, "Access denied due to invalid subscription key.", "invalid_request_error", "401"
            )
        if request.query_params.get("api-version") != self.azure_api_version:
            return _error(404, "Resource not found", "invalid_request_error", "404")
        return await self._complete(request, deployment=request.path_params["deployment"])

    async def _complete(self, request: Request, deployment: str | None) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        self.requests.append(
            {
                "path": request.url.path,
                "body": body,
                "deployment": deployment,
                "authorization": "authorization" in request.headers,
                "api_key_header": "api-key" in request.headers,
            }
        )
        if (deployment or body.get("model")) != self.model:
            return _error(
                404, "The model does not exist.", "invalid_request_error", "model_not_found", "model"
            )
        if refused := self._check(body):
            return refused
        behaviour = self.plan.pop(0) if self.plan else OK
        if behaviour == RATE_LIMITED:
            response = _error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded")
            response.headers["Retry-After"] = self.retry_after
            return response
        if behaviour == OUT_OF_QUOTA:
            return _error(429, "You exceeded your current quota.", "insufficient_quota", "insufficient_quota")
        if behaviour == SERVER_ERROR:
            return _error(500, "The server had an error while processing your request.", "server_error")
        if behaviour == HANG:
            await asyncio.sleep(self.hang_seconds)
        if behaviour == NOT_JSON_BODY:
            return Response("<html>502 Bad Gateway</html>", status_code=200, media_type="application/json")
        return JSONResponse(self._completion(body, behaviour))

    def _check(self, body: dict[str, Any]) -> Response | None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(
                400, "messages must be a non-empty array", "invalid_request_error", param="messages"
            )
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                return _error(400, "Invalid message role.", "invalid_request_error", param="messages")
            if not isinstance(message.get("content"), str) or not message["content"]:
                return _error(
                    400, "Message content must be a string.", "invalid_request_error", param="messages"
                )
        if found := self._personal_data(" \n ".join(m["content"] for m in messages)):
            self.violations.extend(found)
            return _error(400, "The request holds personal data (test).", "invalid_request_error", "pii")
        if "max_tokens" in body and "max_completion_tokens" in body:
            return _error(400, "Use either max_tokens or max_completion_tokens.", "invalid_request_error")
        for limit in ("max_tokens", "max_completion_tokens"):
            if limit in body and not (isinstance(body[limit], int) and body[limit] > 0):
                return _error(400, f"Invalid '{limit}'.", "invalid_request_error", param=limit)
        temperature = body.get("temperature", 1)
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            return _error(400, "Invalid 'temperature'.", "invalid_request_error", param="temperature")
        return self._check_format(body.get("response_format"), messages)

    def _check_format(self, response_format: Any, messages: list[dict[str, Any]]) -> Response | None:
        if response_format is None:
            return None
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "json_object":
            if not any("json" in m["content"].lower() for m in messages):
                return _error(
                    400,
                    "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                    "'json_object'.",
                    "invalid_request_error",
                    param="messages",
                )
            return None
        if kind != "json_schema":
            return _error(
                400, "Invalid 'response_format.type'.", "invalid_request_error", param="response_format"
            )
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {}
        properties = schema.get("properties") or {}
        if not SCHEMA_NAME.match(str(spec.get("name", ""))):
            return _error(400, "Invalid 'response_format.json_schema.name'.", "invalid_request_error")
        if spec.get("strict") is True and (
            schema.get("type") != "object"
            or schema.get("additionalProperties") is not False
            or sorted(schema.get("required") or []) != sorted(properties)
        ):
            return _error(
                400,
                "Invalid schema for response_format: In strict mode, 'additionalProperties' must be false "
                "and 'required' must list every key in 'properties'.",
                "invalid_request_error",
                param="response_format",
            )
        return None

    def _personal_data(self, text: str) -> list[str]:
        found = [
            kind
            for kind, pattern in (
                ("national_id", NATIONAL_ID),
                ("swedish_id", SWEDISH_ID),
                ("phone", PHONE),
                ("email", EMAIL),
            )
            if pattern.search(text)
        ]
        found += [
            f"name:{index}"
            for index, name in enumerate(self.forbidden_names)
            if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE)
        ]
        return found

    def _completion(self, body: dict[str, Any], behaviour: str) -> dict[str, Any]:
        """A deterministic answer built from what was asked: the same request, the same note."""
        user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        try:
            asked = json.loads(user)
        except ValueError:
            asked = {}
        answers = [item.get("svar", "") for item in asked.get("sporreskjema", []) if isinstance(item, dict)]
        note = {
            "kontaktarsak": f"Pasienten oppgir: {answers[0]}." if answers else "Ikke oppgitt.",
            "funn": "; ".join(answers[1:]) or "Ikke oppgitt.",
            "vurdering": asked.get("legens_konklusjon") or "Ikke konkludert.",
            "rad_og_plan": "Ny kontakt ved forverring.",
        }
        content: str | None = json.dumps(self.note or note, ensure_ascii=False)
        refusal, finish = None, "stop"
        if behaviour == NOT_THE_NOTE:
            content = json.dumps({"kontaktarsak": note["kontaktarsak"], "diagnose": "J06.9"})
        elif behaviour == NOT_JSON_CONTENT:
            content = "Her er notatet: Kontaktårsak: svie"
        elif behaviour == REFUSAL:
            content, refusal = None, "I'm sorry, I can't help with that."
        elif behaviour == CUT_OFF:
            content, finish = (content or "")[:20], "length"
        return {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.answered_by,
            "system_fingerprint": "fp_legetime_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": len(user) // 4,
                "completion_tokens": 60,
                "total_tokens": len(user) // 4 + 60,
            },
        }
