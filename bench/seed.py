"""Seeding through the front door: the demo people (``legetime demo``), then GraphQL mutations against a
running ``legetime serve`` as a frontend sends them, so every row is real (sealed answers, payments
reserved with the fake provider, access-log entries, idempotency keys).

The patient is the demo mother Sofie. Of her cases, one in five is for her daughter Ingrid (she is its
guardian), most are submitted (a payment is reserved), some are still drafts (no payment) and some the
demo clinician Nora has claimed and answered (an outcome, ``answeredAt``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx

PATIENT_ID = "17889200022"  # Sofie, the demo mother (synthetic: only the simulated BankID accepts it)
CHILD_ID = "05921550016"  # Ingrid, her daughter (born 2015)
CLINICIAN_ID = "14897800048"  # Nora
ERRORS = "errors { field code message }"

# The case list a frontend shows: ten fields per case, the patient's name and age, the payment's status.
CASE_LIST = (
    "query CaseList { myCases(first: 50) { edges { node { "
    "id number status outcome forChild price { amount currency } slaDueAt submittedAt answeredAt "
    "closedAt createdAt patient { givenName age } payment { status } } } } }"
)


class Client:
    """GraphQL over HTTP, as a frontend sends it."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def gql(self, query: str, token: str | None = None, **variables: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def ok(self, name: str, input: dict[str, Any], fields: str, token: str | None = None) -> dict[str, Any]:
        input_type = f"{name[0].upper()}{name[1:]}Input"
        query = f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {fields} {ERRORS} }} }}"
        payload = dict(self.gql(query, token, input=input)[name])
        if payload["errors"]:
            raise RuntimeError(f"{name}: {payload['errors']}")
        return payload

    def login(self, national_id: str) -> str:
        """The simulated BankID's flow: startLogin, then completeLogin with the handle."""
        started = self.ok("startLogin", {"nationalId": national_id}, "handle")
        completed = self.ok("completeLogin", {"handle": started["handle"]}, "token pending")
        if not completed["token"]:
            raise RuntimeError(f"login of {national_id} did not complete: {completed}")
        return str(completed["token"])

    def answers(self, *, for_child: bool) -> list[dict[str, Any]]:
        """Valid answers to every question shown by default (no to each yes/no: no follow-ups)."""
        questions = self.gql(
            "{ questionnaire { questions { id type audience choices { value } min max "
            "shownIf { question } } } }"
        )["questionnaire"]["questions"]
        audience = {"all", "child" if for_child else "self"}
        out = []
        for q in questions:
            if q["audience"] not in audience or q["shownIf"] is not None:
                continue
            kind = q["type"]
            value: Any
            if kind == "text":
                value = "Utslett på armen i tre dager"
            elif kind == "single_choice":
                value = q["choices"][0]["value"]
            elif kind == "multi_choice":
                value = [q["choices"][0]["value"]]
            elif kind == "yes_no":
                value = False
            elif kind == "number":
                low, high = q["min"] or 0, q["max"]
                value = int(low if high is None else low + (high - low) / 2) or 1
            elif kind == "date":
                value = (date.today() - timedelta(days=3)).isoformat()
            else:
                raise RuntimeError(f"unknown question type {kind}")
            out.append({"questionId": q["id"], "value": value})
        return out


def seed_cases(client: Client, cases: int) -> str:
    """Create ``cases`` cases for the demo mother; returns her token (a fresh login, as a client has)."""
    patient = client.login(PATIENT_ID)
    clinician = client.login(CLINICIAN_ID)
    consent_version = client.gql("{ consentTexts { purpose version } }")["consentTexts"]
    storage_version = next(c["version"] for c in consent_version if c["purpose"] == "COMMUNICATION_STORAGE")
    answers = {child: client.answers(for_child=child) for child in (False, True)}
    for i in range(cases):
        for_child = i % 5 == 4
        start: dict[str, Any] = {"idempotencyKey": f"bench-{i}"}
        if for_child:
            start["child"] = {"nationalId": CHILD_ID, "givenName": "Ingrid", "guardianDeclared": True}
        case_id = client.ok("startCase", start, "case { id }", patient)["case"]["id"]
        if i % 10 == 9:
            continue  # a draft: no answers yet, no payment
        client.ok(
            "answerQuestionnaire", {"caseId": case_id, "answers": answers[for_child]}, "case { id }", patient
        )
        client.ok(
            "grantConsent",
            {"purpose": "COMMUNICATION_STORAGE", "textVersion": storage_version, "caseId": case_id},
            "consent { granted }",
            patient,
        )
        client.ok("submitCase", {"caseId": case_id, "idempotencyKey": f"bench-{i}"}, "case { id }", patient)
        if i % 7 == 0:
            client.ok("claimCase", {"caseId": case_id}, "case { status }", clinician)
            client.ok(
                "answerCase",
                {"caseId": case_id, "body": "Bruk fuktighetskrem morgen og kveld.", "outcome": "ADVICE"},
                "case { status }",
                clinician,
            )
    return patient
