"""Exporting a period of the access log (CSV or JSON) for a privacy officer, with the verification status
of the part of the chain it covers. Capped at ``EXPORT_LIMIT`` rows, oldest first: a truncated export
says so, and the next one starts where it ended."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from legetime.core.identity.ctx import Ctx
from legetime.core.platform.db.models import AuditEvent
from legetime.core.protection import audit
from legetime.core.protection.access_review import EXPORT, Access, Filter, log_review, names, walk

EXPORT_LIMIT = 50_000
EXPORT_SCAN_LIMIT = 1_000_000
"""Flagged only: rows read at most while looking for flagged entries (the export is then truncated)."""
VERIFY_LIMIT = 500_000
"""Chained rows checked at most; beyond, the state is PARTLY_CHECKED (``legetime audit verify`` checks
all of them)."""
FORMAT = "legetime.access-log-export.v1"


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class ChainState(StrEnum):
    VERIFIED = "verified"
    """Every exported entry is chained, and the chain is sound from the first of them to the last."""
    NOT_YET_CHAINED = "not_yet_chained"
    """Sound as far as chained; the newest entries wait for the sequencer (it chains within a second)."""
    PARTLY_CHECKED = "partly_checked"
    """Sound as far as checked; the range was longer than ``VERIFY_LIMIT`` rows."""
    BROKEN = "broken"


@dataclass(frozen=True)
class Verification:
    state: ChainState
    checked: int
    """Chained rows checked: every row between the first exported entry's place and the last one's."""
    unchained: int
    """Exported entries not chained yet."""
    first_seq: int | None = None
    last_seq: int | None = None
    first_broken_id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "checkedRows": self.checked,
            "unchainedRows": self.unchained,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "firstBrokenId": self.first_broken_id,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Export:
    format: ExportFormat
    content: str
    rows: int
    truncated: bool
    verification: Verification


async def export(ctx: Ctx, f: Filter, fmt: ExportFormat, *, flagged_only: bool = False) -> Export:
    """The entries of the filter, oldest first, as CSV or JSON; the export is logged."""
    zone = ctx.platform.settings.zone
    entries: list[Access] = []
    truncated, scanned = False, 0
    async with aclosing(walk(ctx.session, zone, f.conditions(), chunk=1000, descending=False)) as found:
        async for access in found:
            scanned += 1
            if flagged_only and not access.flags:
                if scanned >= EXPORT_SCAN_LIMIT:
                    truncated = True
                    break
                continue
            if len(entries) == EXPORT_LIMIT:
                truncated = True
                break
            entries.append(access)
    verification = await verify(ctx.session, entries)
    who = await names(ctx.session, entries)
    records = [_record(e, who) for e in entries]
    if fmt is ExportFormat.JSON:
        document = {
            "format": FORMAT,
            "exportedAt": _iso(ctx.now),
            "from": _iso(f.since),
            "to": _iso(f.until),
            "filter": f.kinds,
            "flaggedOnly": flagged_only,
            "rows": len(records),
            "truncated": truncated,
            "limit": EXPORT_LIMIT,
            "verification": verification.as_dict(),
            "entries": records,
        }
        content = json.dumps(document, ensure_ascii=False, indent=1)
    else:
        content = _csv(records)
    await log_review(ctx, f, EXPORT, entries, flagged_only=flagged_only)
    return Export(fmt, content, len(records), truncated, verification)


COLUMNS = (
    "id",
    "occurredAt",
    "actorId",
    "actorName",
    "actorRole",
    "patientId",
    "patientName",
    "objectType",
    "objectId",
    "action",
    "reason",
    "flags",
    "chained",
    "seq",
    "hash",
)


def _record(e: Access, who: dict[uuid.UUID, str]) -> dict[str, Any]:
    return {
        "id": e.id,
        "occurredAt": _iso(e.occurred_at),
        "actorId": _str(e.actor_id),
        "actorName": who.get(e.actor_id) if e.actor_id else None,
        "actorRole": e.actor_role,
        "patientId": _str(e.person_id),
        "patientName": who.get(e.person_id) if e.person_id else None,
        "objectType": e.object_type,
        "objectId": e.object_id,
        "action": e.action,
        "reason": e.reason,
        "flags": sorted(flag.name for flag in e.flags),
        "chained": e.chained,
        "seq": e.seq,
        "hash": e.hash,
    }


def _csv(records: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: _cell(value) for key, value in record.items()})
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A CSV cell. Text that a spreadsheet would run as a formula (a name typed as ``=HYPERLINK(…)``) is
    prefixed with an apostrophe; flags are joined by ``;``."""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


# --- verifying the exported range ----------------------------------------------------------------------

# How a broken row is worded for privacy officers (``audit.BREAK_REASONS`` words it for the command line).
BREAKS = {
    audit.Break.MISSING: "En rad mangler foran denne (plassen i kjeden hopper over én).",
    audit.Break.LINK: "Lenken til forrige rad er brutt (en rad fjernet eller satt inn).",
    audit.Break.CHANGED: "Raden er endret etter at den ble skrevet (hashen stemmer ikke).",
}


async def verify(session: AsyncSession, entries: Sequence[Access], *, batch: int = 1000) -> Verification:
    """Check the chain from the first exported entry's place to the last one's, every row in between
    (the export may leave rows out; the chain does not), by ``audit.walk_chain``: each
    place follows the one before, each row links to its predecessor's hash (the first to the row just
    before the range), each row's hash is that of its canonical form (``audit.row_hash``). Rows after the
    range, and whether the newest were cut off, only ``legetime audit verify`` (with a head kept elsewhere)
    can tell."""
    places = [e.seq for e in entries if e.seq is not None]
    unchained = len(entries) - len(places)
    if not places:
        state = ChainState.NOT_YET_CHAINED if unchained else ChainState.VERIFIED
        return Verification(state, 0, unchained)
    first, last = min(places), max(places)
    previous = None
    if first > 1:
        previous = await session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == first - 1))
    walk = await audit.walk_chain(
        session, after=first - 1, previous=previous, until=last, limit=VERIFY_LIMIT, batch_size=batch
    )
    if walk.broken is not None:
        reason = BREAKS[walk.broken]
        return Verification(ChainState.BROKEN, walk.checked, unchained, first, last, walk.broken_id, reason)
    if walk.place < last:
        return Verification(ChainState.PARTLY_CHECKED, walk.checked, unchained, first, last)
    state = ChainState.NOT_YET_CHAINED if unchained else ChainState.VERIFIED
    return Verification(state, walk.checked, unchained, first, last)
