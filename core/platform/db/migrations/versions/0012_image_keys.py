"""each image has its own data key, deleted with it (crypto-shredding when image consent is withdrawn)

Images stored before this revision keep no key of their own (both columns empty): they stay sealed with
their case's communication key and are read with it (docs/privacy.md, "Image keys").

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("wrapped_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # An image sealed with its own key could not be read without that key: refuse rather than lose it.
    own = op.get_bind().scalar(sa.text("SELECT count(*) FROM attachment WHERE wrapped_key IS NOT NULL"))
    if own:
        raise RuntimeError(
            f"{own} image(s) are sealed with their own key, which this downgrade would delete; "
            "erase them first or stay on revision 0012"
        )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.drop_column("wrapped_key")
        batch_op.drop_column("key_id")
