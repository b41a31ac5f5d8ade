"""The hand-written baseline: Starlette + asyncpg serving the one case-list query's answer.

The same rows and the same JSON byte for byte as Legetime's ``myCases`` (``bench.seed.CASE_LIST``): the
bearer token looked up by its keyed hash (the project's own key derivation), the patient's access rule
(her cases and those of her children under 16 that she opened as guardian), the patient as the reader may
see her, the newest payment's status. And the same access-log semantics: one ``audit_event`` row per case
read, with one multi-row INSERT in the transaction of the read, committed before the answer is sent.

``BENCH_ACCESS_LOG`` chooses how the rows are written:

- ``unchained``: a plain INSERT with ``prev_hash`` and ``hash`` left NULL (chained later by a sequencer,
  as in the access-log design with migration 0008);
- ``chained``: the design before it: a transaction-scoped advisory lock, the newest hash read, each row's
  hash computed with the project's ``row_hash`` (the only way when ``hash`` is NOT NULL);
- ``off``: no access log (the "without the log" variant).

    BENCH_DSN=postgresql://postgres@127.0.0.1/legetime_bench BENCH_ACCESS_LOG=unchained \\
        uvicorn bench.baseline_app:app --port 8001
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legetime.core.consultation.access import _sixteenth_birthday_cutoff
from legetime.core.identity.nationalid import age_on
from legetime.core.platform.config import load_settings
from legetime.core.platform.db.models import CaseOutcome, CaseStatus, RequesterRole
from legetime.core.platform.runtime import derive_key
from legetime.core.protection.audit import row_hash

MODES = ("unchained", "chained", "off")
MODE = os.environ.get("BENCH_ACCESS_LOG", "unchained")
if MODE not in MODES:
    raise SystemExit(f"BENCH_ACCESS_LOG must be one of {', '.join(MODES)}")
LOCK_KEY = 0x4C45474554494D45  # the key Legetime's chained access log locks on (protection/audit.py)

SETTINGS = load_settings()
TOKEN_KEY = derive_key(SETTINGS, "session-token")
STATUS = {member.value: member.name for member in CaseStatus}
OUTCOME = {member.value: member.name for member in CaseOutcome}
GUARDIAN = RequesterRole.GUARDIAN.value

AUTH = """
SELECT s.person_id, s.revoked_at, s.expires_at,
       ARRAY(SELECT role FROM staff_membership m WHERE m.person_id = s.person_id) AS roles
FROM auth_session s WHERE s.token_hash = $1
"""
# myCases: newest first (created_at, id descending), the patient's rule, the newest payment per case.
CASES = """
SELECT c.id, c.number, c.status, c.outcome, c.requester_role, c.requester_id, c.subject_id,
       c.price_amount, c.price_currency, c.sla_due_at, c.submitted_at, c.answered_at, c.closed_at,
       c.created_at, c.patient_given_name, p.given_name, p.birth_date,
       (SELECT r.status FROM payment_reservation r WHERE r.case_id = c.id
        ORDER BY r.created_at DESC LIMIT 1) AS payment_status
FROM consultation_case c JOIN person p ON p.id = c.subject_id
WHERE c.subject_id = $1
   OR (c.requester_id = $1 AND c.requester_role = 'guardian' AND p.birth_date > $2)
ORDER BY c.created_at DESC, c.id DESC
LIMIT $3
"""
LOG_UNCHAINED = """
INSERT INTO audit_event (occurred_at, actor_id, actor_role, person_id, object_type, object_id, action, reason)
SELECT $1, $2, $3, person_id, 'case', object_id, 'list', NULL
FROM unnest($4::uuid[], $5::text[]) AS t(person_id, object_id)
"""
LOG_CHAINED = """
INSERT INTO audit_event (occurred_at, actor_id, actor_role, person_id, object_type, object_id, action, reason,
                         prev_hash, hash)
SELECT $1, $2, $3, person_id, 'case', object_id, 'list', NULL, prev_hash, hash
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[]) AS t(person_id, object_id, prev_hash, hash)
"""

pool: asyncpg.Pool | None = None


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _global_id(case_id: uuid.UUID) -> str:
    return base64.b64encode(f"Case:{case_id}".encode()).decode()


def _node(row: asyncpg.Record, reader: uuid.UUID, today: date) -> dict[str, Any]:
    guardian_case = row["requester_role"] == GUARDIAN
    given_name = row["given_name"]
    if guardian_case and reader != row["subject_id"]:
        # A guardian's case names the child as she gave it; an older one shows her no name.
        given_name = row["patient_given_name"] if row["patient_given_name"] is not None else ""
    return {
        "id": _global_id(row["id"]),
        "number": row["number"],
        "status": STATUS[row["status"]],
        "outcome": None if row["outcome"] is None else OUTCOME[row["outcome"]],
        "forChild": guardian_case,
        "price": {"amount": row["price_amount"], "currency": row["price_currency"]},
        "slaDueAt": _time(row["sla_due_at"]),
        "submittedAt": _time(row["submitted_at"]),
        "answeredAt": _time(row["answered_at"]),
        "closedAt": _time(row["closed_at"]),
        "createdAt": _time(row["created_at"]),
        "patient": {"givenName": given_name, "age": age_on(row["birth_date"], today)},
        "payment": None if row["payment_status"] is None else {"status": row["payment_status"]},
    }


def _unauthenticated() -> Response:
    body = {"data": None, "errors": [{"message": "not logged in", "path": ["myCases"]}]}
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


async def _log(conn: asyncpg.Connection, reader: uuid.UUID, role: str, rows: list[asyncpg.Record]) -> None:
    now = datetime.now(UTC)
    persons = [row["subject_id"] for row in rows]
    objects = [str(row["id"]) for row in rows]
    if MODE == "unchained":
        await conn.execute(LOG_UNCHAINED, now, reader, role, persons, objects)
        return
    # chained: one appender at a time, each row hashed over its predecessor's hash.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
    previous = await conn.fetchval("SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1")
    prevs, hashes = [], []
    for person, object_id in zip(persons, objects, strict=True):
        entry = {
            "occurred_at": now,
            "actor_id": reader,
            "actor_role": role,
            "person_id": person,
            "object_type": "case",
            "object_id": object_id,
            "action": "list",
            "reason": None,
            "prev_hash": previous,
        }
        prevs.append(previous)
        previous = row_hash(entry)
        hashes.append(previous)
    await conn.execute(LOG_CHAINED, now, reader, role, persons, objects, prevs, hashes)


async def graphql(request: Request) -> Response:
    body = json.loads(await request.body())
    if "myCases" not in body.get("query", ""):
        return Response('{"errors":[{"message":"only the case list"}]}', 400, media_type="application/json")
    first = 50
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _unauthenticated()
    token_hash = hmac.new(TOKEN_KEY, token.strip().encode(), hashlib.sha256).hexdigest()
    assert pool is not None
    async with pool.acquire() as conn:
        session = await conn.fetchrow(AUTH, token_hash)
        now = datetime.now(UTC)
        if session is None or session["revoked_at"] is not None or session["expires_at"] <= now:
            return _unauthenticated()
        reader: uuid.UUID = session["person_id"]
        roles = set(session["roles"])
        role = "clinician" if "clinician" in roles else "operator" if "operator" in roles else "patient"
        today = now.astimezone(SETTINGS.zone).date()
        async with conn.transaction():
            rows = await conn.fetch(CASES, reader, _sixteenth_birthday_cutoff(today), first)
            if MODE != "off" and rows:
                await _log(conn, reader, role, rows)
        # committed: now answer
    data = {"data": {"myCases": {"edges": [{"node": _node(row, reader, today)} for row in rows]}}}
    return Response(json.dumps(data, separators=(",", ":")), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response('{"status":"ok"}', media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=2, max_size=10)
    try:
        yield
    finally:
        await pool.close()


app = Starlette(
    routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan
)
