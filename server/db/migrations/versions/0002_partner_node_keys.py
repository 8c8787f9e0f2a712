"""Schema 7: a partner's node key (the key its SuperNode authenticates with, unique), the
SuperLink node id it was registered as, and when the partner was removed.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# PostgreSQL's own name for an inline UNIQUE (node_key), as create_all makes it
NODE_KEY_UNIQUE = "partners_node_key_key"


def upgrade() -> None:
    # batch: SQLite cannot add a constraint in place, so the table is copied anew
    with op.batch_alter_table("partners") as partners:
        partners.add_column(sa.Column("node_key", sa.String(1000)))
        partners.add_column(sa.Column("node_id", sa.String(32)))
        partners.add_column(sa.Column("removed_at", sa.DateTime(timezone=True)))
        partners.create_unique_constraint(NODE_KEY_UNIQUE, ["node_key"])


def downgrade() -> None:
    with op.batch_alter_table("partners") as partners:
        partners.drop_constraint(NODE_KEY_UNIQUE, type_="unique")
        partners.drop_column("removed_at")
        partners.drop_column("node_id")
        partners.drop_column("node_key")
