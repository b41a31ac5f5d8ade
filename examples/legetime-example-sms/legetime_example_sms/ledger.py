"""The plugin's own table in the platform's database (``register_tables``): which gateway message each
reference made, so a repeated send is answered here, without a call to the gateway, on whichever machine
it lands. A plugin keeps such state in the platform's database, never in a file of its own."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, exc, insert, select

from legetime.sdk import IdempotencyConflict, PluginDatabase, PluginTables, SmsMessage, UTCDateTime

PREFIX = "example_sms"

metadata = MetaData()
sent = Table(
    "example_sms_sent",
    metadata,
    Column("reference", String(300), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("gateway_id", String(100), nullable=False),
    Column("segments", Integer, nullable=False),
    Column("encoding", String(16), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
)

TABLES = PluginTables(PREFIX, metadata, Path(__file__).parent / "migrations")


def fingerprint(message: SmsMessage) -> str:
    """What makes a message the same message: a reference reused for another one is a conflict."""
    return hashlib.sha256(f"{message.to}\0{message.sender}\0{message.body}".encode()).hexdigest()


class Ledger:
    def __init__(self, database: PluginDatabase) -> None:
        self.database = database

    async def find(self, message: SmsMessage) -> tuple[str, int, str] | None:
        """(gateway id, segments, encoding) of the message this reference made, if it was sent."""
        async with self.database.transaction() as session:
            row = (await session.execute(select(sent).where(sent.c.reference == message.reference))).first()
        if row is None:
            return None
        if row.fingerprint != fingerprint(message):
            raise IdempotencyConflict(
                "This reference was already used for a different message.", field="reference"
            )
        return row.gateway_id, row.segments, row.encoding

    async def record(self, message: SmsMessage, gateway_id: str, segments: int, encoding: str) -> None:
        values = {
            "reference": message.reference,
            "fingerprint": fingerprint(message),
            "gateway_id": gateway_id,
            "segments": segments,
            "encoding": encoding,
            "sent_at": datetime.now(UTC),
        }
        try:
            async with self.database.transaction() as session:
                await session.execute(insert(sent).values(values))
        except exc.IntegrityError:
            pass  # another process recorded it first: the gateway's client_ref made it the same message
