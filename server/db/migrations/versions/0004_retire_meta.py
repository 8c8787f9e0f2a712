"""The `meta` table goes: Alembic's version table says which schema a store has. Without
it, a release from before migrations refuses a migrated store instead of opening it.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("meta")


def downgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(50), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(meta, [{"key": "schema_version", "value": "7"}])  # what 0003 is
