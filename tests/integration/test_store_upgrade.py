"""`sangsaeng admin store upgrade` as an operator runs it, on SQLite and PostgreSQL: a store
from before migrations brought to head, with the revisions before and after printed and an
entry in the audit log; run again, nothing to do. Two upgrades started at once (real
processes, both held at the schema lock until both wait there) migrate once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sangsaeng.server.db import Store
from sangsaeng.server.db.engine import store_engine
from sangsaeng.server.db.schema import HEAD, upgrade
from sangsaeng.server.db.schema_lock import schema_lock

from ..support.cli import sangsaeng
from ..support.processes import flower_processes
from ..support.stores import backend, connected, load_before_migrations, revision

SANGSAENG = str(Path(sys.executable).parent / "sangsaeng")
BEFORE = "revision before: 0001 (schema 6, from before migrations)"


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store schema 6 wrote (before migrations), with a run and its records."""
    url = (f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres").database())
    load_before_migrations(url, "6")
    return url


def upgrade_command(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([SANGSAENG, "admin", "store", "upgrade", "--store-url", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def audited_upgrades(url: str) -> list[str]:
    """The detail of each `store upgrade` in the audit log, oldest first."""
    with connected(url) as db:
        rows = db.execute("SELECT detail FROM audit_log WHERE action = "
                          "'cli: admin store upgrade' ORDER BY seq").fetchall()
    return [detail for (detail,) in rows]


def test_an_old_store_is_upgraded_once_and_then_left_alone(old_store: str) -> None:
    first = upgrade_command(old_store)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert f"{BEFORE}\nrevision after: {HEAD} (head)" in out
    again = upgrade_command(old_store)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    assert f"revision before: {HEAD}\nrevision after: {HEAD} (head)" in out
    assert "already at the head revision: nothing to do" in out
    assert audited_upgrades(old_store) == [f"0001 -> {HEAD}", f"{HEAD}, already at head"]
    [entry] = [e for e in Store(old_store).audit_log.entries() if e.seq == 3]
    assert entry.actor.startswith("operator ") and entry.role == "admin"


def waiting_for_the_lock(url: str) -> int:
    """How many processes wait for the store's schema lock."""
    if backend(url) == "postgresql":
        with connected(url) as db:
            [(count,)] = db.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = "
                "current_database())").fetchall()
        return int(count)
    inode = os.stat(f"{url.removeprefix('sqlite:///')}.lock").st_ino
    # /proc/locks: "1: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ..." for a blocked request
    return sum(1 for line in Path("/proc/locks").read_text().splitlines()
               if "->" in line.split() and line.split()[6].endswith(f":{inode}"))


def test_two_upgrades_at_once_migrate_once(old_store: str) -> None:
    engine = store_engine(old_store)
    with schema_lock(engine):  # held here until both upgrades wait for it
        upgrades = [upgrade_command(old_store) for _ in range(2)]
        deadline = time.monotonic() + 120
        while waiting_for_the_lock(old_store) < 2:
            assert all(u.poll() is None for u in upgrades), [u.communicate() for u in upgrades]
            assert time.monotonic() < deadline, "the upgrades never reached the lock"
            time.sleep(0.2)
        assert revision(old_store) == "0001"
    engine.dispose()
    outs = [u.communicate(timeout=120)[0] for u in upgrades]
    assert [u.returncode for u in upgrades] == [0, 0], outs
    befores = sorted(line for out in outs for line in out.splitlines()
                     if line.startswith("revision before:"))
    assert befores == [BEFORE, f"revision before: {HEAD}"]  # one migrated, one found it done
    assert sorted(audited_upgrades(old_store)) == [f"0001 -> {HEAD}", f"{HEAD}, already at head"]
    assert revision(old_store) == HEAD


def test_the_other_admin_commands_refuse_an_old_store_in_one_line(old_store: str) -> None:
    result = sangsaeng("admin", "token", "list", "--store-url", old_store)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "back it up, then run `sangsaeng admin store upgrade`" in " ".join(result.stdout.split())
    assert revision(old_store) == "0001"  # refused, not changed


def test_the_server_refuses_to_start_on_an_old_store(old_store: str, tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    assert sangsaeng("admin", "certificates", "--out", str(tls), "--host", "127.0.0.1"
                     ).returncode == 0
    result = sangsaeng("server", "--tls-certfile", str(tls / "server.pem"), "--tls-keyfile",
                       str(tls / "server.key"), "--workdir", str(tmp_path / "coordinator"),
                       env={"SANGSAENG_STORE_URL": old_store})
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "back it up, then run `sangsaeng admin store upgrade`" in " ".join(result.stdout.split())
    assert flower_processes() == [] and revision(old_store) == "0001"


def test_a_token_id_past_what_the_store_holds_is_no_token(old_store: str) -> None:
    upgrade(store_engine(old_store))
    result = sangsaeng("admin", "token", "revoke", str(2**31), "--store-url", old_store)
    assert (result.returncode, result.stdout.strip()) == (1, f"no live token {2**31}")
