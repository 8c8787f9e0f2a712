"""A throwaway PostgreSQL server for one test session: Debian's own binaries, a fresh cluster
in a temporary folder, listening on a free loopback port (and a socket in that folder), with
fsync off — nothing in it must outlive the session. Each test (or module) asks it for a
database of its own.

PostgreSQL refuses to run as root: as root, every server command runs as the `postgres`
user (runuser), which owns the temporary folder.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from sangsaeng.server.deployment.flower_processes import free_port

SUPERUSER = "postgres"


def bindir() -> Path:
    """Where initdb and pg_ctl are: pg_config's answer, else Debian's newest."""
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
                       "`make test` installs them (Debian's `postgresql`, as root)")


class PostgresServer:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self._names = itertools.count(1)

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """The SQLAlchemy URL of `database`, as `user` (loopback; every login is trusted)."""
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """A superuser's connection, autocommit: for what tests do outside the store."""
        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                               dbname=database, autocommit=True)

    def database(self) -> str:
        """A new, empty database; its URL."""
        name = f"test_{next(self._names)}"
        with self.connect() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_postgres(args: list[str], cwd: Path) -> None:
    command = [*(["runuser", "-u", SUPERUSER, "--"] if os.getuid() == 0 else []), *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}"
                           f"{done.stderr}")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running server, stopped and removed on leaving (however the tests ended)."""
    programs = bindir()
    # not under pytest's temporary folder: that one is root's alone, and PostgreSQL's
    # socket path must stay under ~100 characters
    root = Path(tempfile.mkdtemp(prefix="sangsaeng-pg-"))
    if os.getuid() == 0:
        account = pwd.getpwnam(SUPERUSER)
        os.chown(root, account.pw_uid, account.pw_gid)
    data = root / "data"
    server = PostgresServer(root, free_port())
    try:
        _as_postgres([str(programs / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER,
                      "-E", "UTF8", "--locale=C", "--no-sync"], root)
        options = (f"-p {server.port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off "
                   # stores the tests leave to the garbage collector keep their connections
                   "-c max_connections=500")
        _as_postgres([str(programs / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                      "-o", options, "-w", "start"], root)
        try:
            yield server
        finally:
            _as_postgres([str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                          "stop"], root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
