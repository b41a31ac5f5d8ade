"""encryption at rest, retention and privacy

Health content (answers, messages, journal notes), national IDs and login state are sealed with data keys
(core.crypto); rows that exist are converted in place with the configured master keys. Adds the tombstone,
statistics and retention-run tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import legetime.core.platform.db.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _keys() -> tuple[Any, Any]:
    """The platform's key ring and key derivation, from the same configuration the platform reads."""
    from legetime.core.platform.config import load_settings
    from legetime.core.platform.crypto import KeyRing, parse_master_keys
    from legetime.core.platform.runtime import derive_key

    settings = load_settings()
    ring = KeyRing(parse_master_keys(settings.master_key_entries(), derive_key(settings, "master-key:local")))
    return ring, lambda purpose: derive_key(settings, purpose)


def _aad(owner: Any, what: str) -> bytes:
    return f"legetime:{owner}:{what}".encode()


def _rows(sql: str) -> list[Any]:
    return list(op.get_bind().execute(sa.text(sql)).mappings())


def _update(table: str, row_id: Any, **values: Any) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    op.get_bind().execute(
        sa.text(f"UPDATE {table} SET {assignments} WHERE id = :id"), {"id": row_id, **values}
    )


def _seal_existing_rows() -> None:
    from legetime.core.platform.crypto import WrappedKey, keyed_hash, seal

    persons = _rows("SELECT id, national_id FROM person")
    cases = _rows("SELECT id, answers FROM consultation_case")
    logins = _rows("SELECT id FROM login_transaction")
    if not (persons or cases or logins):
        return
    ring, derive = _keys()
    for person in persons:
        key, wrapped = ring.new_data_key()
        _update(
            "person",
            person["id"],
            national_id_hash=keyed_hash(derive("national-id-lookup"), person["national_id"]),
            national_id_sealed=seal(
                key, person["national_id"].encode(), _aad(_uuid(person["id"]), "national_id")
            ),
            key_id=wrapped.key_id,
            wrapped_key=wrapped.wrapped,
        )
    for case in cases:
        case_id = _uuid(case["id"])
        communication, communication_wrapped = ring.new_data_key()
        _, record_wrapped = ring.new_data_key()
        answers = (
            case["answers"] if isinstance(case["answers"], dict) else json.loads(case["answers"] or "{}")
        )
        plain = json.dumps(answers, ensure_ascii=False, sort_keys=True).encode()
        _update(
            "consultation_case",
            case["id"],
            answers_sealed=seal(communication, plain, _aad(case_id, "answers")),
            communication_key_id=communication_wrapped.key_id,
            communication_key=communication_wrapped.wrapped,
            record_key_id=record_wrapped.key_id,
            record_key=record_wrapped.wrapped,
        )
    keys = {
        str(_uuid(row["id"])): row
        for row in _rows(
            "SELECT id, communication_key_id, communication_key, record_key_id, record_key "
            "FROM consultation_case"
        )
    }

    def key_of(case_id: Any, kind: str) -> bytes:
        row = keys[str(_uuid(case_id))]
        return ring.unwrap(WrappedKey(row[f"{kind}_key_id"], row[f"{kind}_key"]))

    for message in _rows("SELECT id, case_id, body FROM message"):
        sealed = seal(
            key_of(message["case_id"], "communication"),
            message["body"].encode(),
            _aad(_uuid(message["case_id"]), "message"),
        )
        _update("message", message["id"], body_sealed=sealed)
    for note in _rows("SELECT id, case_id, text, sections FROM journal_note"):
        sections = (
            note["sections"] if isinstance(note["sections"], dict) else json.loads(note["sections"] or "{}")
        )
        plain = json.dumps({"text": note["text"], "sections": sections}, ensure_ascii=False).encode()
        sealed = seal(key_of(note["case_id"], "record"), plain, _aad(_uuid(note["case_id"]), "journal"))
        _update("journal_note", note["id"], content_sealed=sealed)
    for login in logins:  # logins in progress are abandoned: their state is not worth converting
        state = seal(derive("login-state"), b"{}", _aad(_uuid(login["id"]), "login_state"))
        _update("login_transaction", login["id"], state_sealed=state)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def upgrade() -> None:
    op.create_table(
        "case_statistic",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("age_band", sa.String(length=10), nullable=False),
        sa.Column("for_child", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.Column("final_status", sa.String(length=30), nullable=False),
        sa.Column("response_minutes", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_statistic")),
    )
    with op.batch_alter_table("case_statistic", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_statistic_day"), ["day"], unique=False)
    op.create_table(
        "retention_run",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.String(length=30), nullable=False),
        sa.Column("trigger", sa.String(length=30), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("started_at", legetime.core.platform.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", legetime.core.platform.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["person.id"], name=op.f("fk_retention_run_actor_id_person")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_run")),
    )
    op.create_table(
        "case_erasure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("rule", sa.String(length=30), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("deleted", sa.JSON(), nullable=False),
        sa.Column("erased_at", legetime.core.platform.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["consultation_case.id"], name=op.f("fk_case_erasure_case_id_consultation_case")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["retention_run.id"], name=op.f("fk_case_erasure_run_id_retention_run")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_erasure")),
    )
    with op.batch_alter_table("case_erasure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_erasure_case_id"), ["case_id"], unique=False)

    # 1. New columns, nullable while existing rows are converted.
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        # Images stored before this revision are not sealed.
        batch_op.add_column(sa.Column("sealed", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answers_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("communication_key_id", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("communication_key", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("record_key_id", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("record_key", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("purged_at", legetime.core.platform.db.base.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("journal_note", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("withheld_from_guardian", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("login_transaction", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_sealed", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("national_id_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("national_id_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("key_id", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("wrapped_key", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "name_rectified_at", legetime.core.platform.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "restricted_at", legetime.core.platform.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )

    # 2. Seal what is there.
    _seal_existing_rows()

    # 3. The plain columns go; the sealed ones are required.
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.alter_column("record_key_id", existing_type=sa.String(length=50), nullable=False)
        batch_op.alter_column("record_key", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("answers")
    with op.batch_alter_table("journal_note", schema=None) as batch_op:
        batch_op.alter_column("content_sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column("withheld_from_guardian", existing_type=sa.Boolean(), server_default=None)
        batch_op.drop_column("text")
        batch_op.drop_column("sections")
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.alter_column("sealed", existing_type=sa.Boolean(), server_default=None)
    with op.batch_alter_table("login_transaction", schema=None) as batch_op:
        batch_op.alter_column("state_sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("state")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.alter_column("body_sealed", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("body")
    with op.batch_alter_table("person", schema=None) as batch_op:
        for column, kind in (
            ("national_id_hash", sa.String(length=64)),
            ("national_id_sealed", sa.LargeBinary()),
            ("key_id", sa.String(length=50)),
            ("wrapped_key", sa.LargeBinary()),
        ):
            batch_op.alter_column(column, existing_type=kind, nullable=False)
        batch_op.drop_constraint(batch_op.f("uq_person_national_id"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_person_national_id_hash"), ["national_id_hash"])
        batch_op.drop_column("national_id")


def _open_existing_rows() -> None:
    from legetime.core.platform.crypto import KeyUnavailable, WrappedKey, unseal

    persons = _rows("SELECT id, national_id_sealed, key_id, wrapped_key FROM person")
    cases = _rows(
        "SELECT id, answers_sealed, communication_key_id, communication_key, record_key_id, record_key "
        "FROM consultation_case"
    )
    if not (persons or cases):
        return
    ring, _ = _keys()
    for person in persons:
        key = ring.unwrap(WrappedKey(person["key_id"], person["wrapped_key"]))
        plain = unseal(key, person["national_id_sealed"], _aad(_uuid(person["id"]), "national_id")).decode()
        _update("person", person["id"], national_id=plain)
    by_id = {}
    for case in cases:
        case_id = _uuid(case["id"])
        try:
            communication = ring.unwrap(WrappedKey(case["communication_key_id"], case["communication_key"]))
        except KeyUnavailable:
            communication = None  # deleted: the communication stays deleted
        record = ring.unwrap(WrappedKey(case["record_key_id"], case["record_key"]))
        by_id[str(case_id)] = (communication, record)
        answers = "{}"
        if communication is not None and case["answers_sealed"] is not None:
            answers = unseal(communication, case["answers_sealed"], _aad(case_id, "answers")).decode()
        _update("consultation_case", case["id"], answers=answers)
    for message in _rows("SELECT id, case_id, body_sealed FROM message"):
        communication, _ = by_id[str(_uuid(message["case_id"]))]
        assert communication is not None  # messages of deleted cases are deleted with the key
        body = unseal(
            communication, message["body_sealed"], _aad(_uuid(message["case_id"]), "message")
        ).decode()
        _update("message", message["id"], body=body)
    for note in _rows("SELECT id, case_id, content_sealed FROM journal_note"):
        _, record = by_id[str(_uuid(note["case_id"]))]
        plain = json.loads(unseal(record, note["content_sealed"], _aad(_uuid(note["case_id"]), "journal")))
        _update("journal_note", note["id"], text=plain["text"], sections=json.dumps(plain["sections"]))


def downgrade() -> None:
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("national_id", sa.String(length=11), nullable=True))
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.Text(), nullable=True))
    with op.batch_alter_table("login_transaction", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("journal_note", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sections", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("text", sa.Text(), nullable=True))
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answers", sa.JSON(), nullable=True))

    _open_existing_rows()

    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.alter_column("national_id", existing_type=sa.String(length=11), nullable=False)
        batch_op.drop_constraint(batch_op.f("uq_person_national_id_hash"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_person_national_id"), ["national_id"])
        for column in ("restricted_at", "name_rectified_at", "wrapped_key", "key_id", "national_id_sealed"):
            batch_op.drop_column(column)
        batch_op.drop_column("national_id_hash")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.alter_column("body", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("body_sealed")
    with op.batch_alter_table("login_transaction", schema=None) as batch_op:
        batch_op.alter_column("state", existing_type=sa.JSON(), server_default=None)
        batch_op.drop_column("state_sealed")
    with op.batch_alter_table("journal_note", schema=None) as batch_op:
        batch_op.alter_column("sections", existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("withheld_from_guardian")
        batch_op.drop_column("content_sealed")
    with op.batch_alter_table("consultation_case", schema=None) as batch_op:
        batch_op.alter_column("answers", existing_type=sa.JSON(), nullable=False)
        for column in (
            "purged_at",
            "record_key",
            "record_key_id",
            "communication_key",
            "communication_key_id",
        ):
            batch_op.drop_column(column)
        batch_op.drop_column("answers_sealed")
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_column("sealed")
    with op.batch_alter_table("case_erasure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_erasure_case_id"))
    op.drop_table("case_erasure")
    op.drop_table("retention_run")
    with op.batch_alter_table("case_statistic", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_statistic_day"))
    op.drop_table("case_statistic")
