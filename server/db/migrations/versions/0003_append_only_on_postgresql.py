"""PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the privacy records and the audit log,
as SQLite's triggers have refused UPDATE and DELETE since schema 6: one plpgsql function
raising an integrity violation (SQLite's RAISE(ABORT) is one too), and a trigger per verb.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY = ("privacy_records", "audit_log")
GUARDS = (("update", "ROW"), ("delete", "ROW"), ("truncate", "STATEMENT"))


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("CREATE OR REPLACE FUNCTION sangsaeng_append_only() RETURNS trigger "
               "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '% is append-only', "
               "TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation'; END $$")
    for table in APPEND_ONLY:
        for verb, each in GUARDS:
            op.execute(f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
                       f"FOR EACH {each} EXECUTE FUNCTION sangsaeng_append_only()")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table in APPEND_ONLY:
        for verb, _ in GUARDS:
            op.execute(f"DROP TRIGGER {table}_no_{verb} ON {table}")
    op.execute("DROP FUNCTION sangsaeng_append_only()")
