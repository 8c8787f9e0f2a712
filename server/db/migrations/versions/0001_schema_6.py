"""Schema 6: the tables Sangsaeng created before it had migrations (create_all, then a
`meta` row saying "6"). A store from then is stamped with this revision, not rebuilt.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)  # tables.py's UtcDateTime, as the database stores it
APPEND_ONLY = ("privacy_records", "audit_log")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("flower_run_id", sa.String(32), unique=True),
        sa.Column("owner", sa.String(100), index=True),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("task_json", sa.Text, nullable=False),
        sa.Column("task_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME),
        sa.Column("model", sa.LargeBinary),
        sa.Column("model_sha256", sa.String(64)),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "round_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("trained_nodes", sa.Integer, nullable=False),
        sa.Column("evaluated_nodes", sa.Integer, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("partner_errors", sa.JSON, nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.UniqueConstraint("run_id", "round"),
    )
    op.create_table(
        "privacy_records",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("partner", sa.String(200), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("noise_multiplier", sa.Float, nullable=False),
        sa.Column("sample_rate", sa.Float, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("evaluation_noise_multiplier", sa.Float, nullable=False),
        sa.Column("trained_parameters", sa.Integer, nullable=False),
        sa.Column("delta", sa.Float, nullable=False),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("lifetime_epsilon", sa.Float, nullable=False),
        sa.Column("epsilon_cap", sa.Float, nullable=False),
        sa.Column("ledger_seq", sa.Integer, nullable=False),
        sa.Column("ledger_hash", sa.String(64), nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.UniqueConstraint("run_id", "round", "node_id"),
    )
    op.create_table(
        "base_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(100), index=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("tensors", sa.JSON, nullable=False),
        sa.Column("weights", sa.LargeBinary, nullable=False),
        sa.Column("uploaded_at", TIME, nullable=False),
        sa.UniqueConstraint("owner", "sha256"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(100)),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME),
    )
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("entry_json", sa.Text, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "partners",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("registered_at", TIME, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16)),
        sa.Column("tenant", sa.String(100)),
        sa.Column("action", sa.String(500), nullable=False),
        sa.Column("outcome", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(500)),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(50), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    # Schema 6 guarded these on SQLite only; PostgreSQL's guards came with revision 0003.
    if op.get_context().dialect.name == "sqlite":
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


def downgrade() -> None:
    for table in ("meta", "audit_log", "partners", "datasets", "api_tokens", "base_models",
                  "privacy_records", "round_results", "runs"):
        op.drop_table(table)  # (SQLite drops a table's triggers with it)
