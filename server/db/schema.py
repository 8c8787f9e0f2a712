"""Which schema revision a store is at, and bringing it to the head revision: the Alembic
revisions in migrations/versions, run under schema_lock.

A store is opened only at the head revision. An empty database is created there at once
(create_all, then stamped: a test proves this gives what the revisions give); a store
behind is refused until the operator runs `sangsaeng admin store upgrade`, which is the
only thing that migrates. Stores from before migrations kept their schema version in a
`meta` table: those are recognised as the revision their tables are.

Alembic is imported only where the schema changes or is out of step: importing it costs
more than opening a store at head, which the ServerApp does for every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ProgrammingError

from .schema_lock import schema_lock
from .tables import Base

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0005"  # the newest revision in migrations/versions (a test keeps them in step)
MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
# a store from before migrations: the schema version in its meta table → its revision
BEFORE_MIGRATIONS = {"6": "0001", "7": "0002"}
UPGRADE = "`sangsaeng admin store upgrade`"


class StoreSchemaError(RuntimeError):
    """The database was written by a different version of Sangsaeng."""


@dataclass(frozen=True)
class Found:
    revision: str | None  # None: an empty database
    before_migrations: str | None = None  # the schema version in the meta table, if so

    def __str__(self) -> str:
        if self.revision is None:
            return "none (an empty database)"
        if self.before_migrations:
            return f"{self.revision} (schema {self.before_migrations}, from before migrations)"
        return self.revision


def find(conn: Connection, url: object) -> Found:
    """The revision `conn`'s database is at; refused if it is no store this release can
    recognise. (`url` names it in the error.)"""
    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE in tables:
        revision = conn.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        if revision is not None or tables == {VERSION_TABLE}:
            return Found(revision)
    elif "meta" in tables:
        version = conn.scalar(text("SELECT value FROM meta WHERE key = 'schema_version'"))
        if version in BEFORE_MIGRATIONS:
            return Found(BEFORE_MIGRATIONS[version], before_migrations=version)
        raise StoreSchemaError(f"the store {url!r} has schema version {version}, which no "
                               "release with migrations can upgrade; move it away (or point "
                               "SANGSAENG_STORE_URL elsewhere) to start a new one")
    elif not tables:
        return Found(None)
    raise StoreSchemaError(f"the store {url!r} was written by an older Sangsaeng; move it "
                           "away (or point SANGSAENG_STORE_URL elsewhere) to start a new one")


def check(engine: Engine) -> None:
    """Let the store open only at the head revision; an empty database is created there.
    Cheap at head (one look at the tables and one row), as the ServerApp opens the store
    for every run."""
    with engine.connect() as conn:
        found = find(conn, engine.url)
    if found.revision is None:
        with schema_lock(engine) as conn:
            found = find(conn, engine.url)  # another process may have created it meanwhile
            if found.revision is None:
                try:
                    _create(conn)
                except ProgrammingError as err:  # PostgreSQL's app role (deploy/postgres)
                    raise StoreSchemaError(
                        f"the store {engine.url!r} is empty and this login may not create "
                        f"its tables: run {UPGRADE} with the owner's login first "
                        f"({str(err.orig).strip()})") from err
                return
    if found.revision == HEAD:
        return
    if found.revision not in known_revisions():
        raise _newer(found.revision, engine.url)
    raise StoreSchemaError(f"the store {engine.url!r} is at schema revision {found}, this "
                           f"Sangsaeng needs {HEAD}: back it up, then run {UPGRADE} (with "
                           "this release)")


def upgrade(engine: Engine) -> tuple[Found, str]:
    """Bring the store to the head revision (an empty one is created there); what it was
    before, and the revision it is at now."""
    with schema_lock(engine) as conn:
        found = find(conn, engine.url)
        if found.revision is None:
            _create(conn)
        elif found.revision != HEAD:
            if found.revision not in known_revisions():
                raise _newer(found.revision, engine.url)
            from alembic import command

            config = alembic_config(conn)
            if found.before_migrations:
                command.stamp(config, found.revision)
            command.upgrade(config, HEAD)
        return found, HEAD


def known_revisions() -> list[str]:
    """Every revision this release ships, oldest first."""
    from alembic.script import ScriptDirectory

    walked = ScriptDirectory(str(MIGRATIONS)).walk_revisions()
    return [script.revision for script in reversed(list(walked))]


def _create(conn: Connection) -> None:
    from alembic import command

    Base.metadata.create_all(conn)
    command.stamp(alembic_config(conn), HEAD)


def alembic_config(conn: Connection) -> Config:
    """Alembic's configuration: the revisions shipped in the package, run on `conn`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _newer(revision: str, url: object) -> StoreSchemaError:
    return StoreSchemaError(f"the store {url!r} is at schema revision {revision}, which this "
                            f"Sangsaeng does not know (it knows up to {HEAD}): a newer "
                            "release wrote it. Run that release, or a newer one")
