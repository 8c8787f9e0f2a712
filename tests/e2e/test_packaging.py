"""The wheel a partner installs holds every module of the repo, under sangsaeng.<room>
(the roles sit beside sangsaeng/ and reach it through symlinks), the demo's task, and the
store's migrations, which a plain (not editable) install finds and runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEGACY_STORE = ROOT / "tests" / "support" / "legacy" / "store-6.sqlite.sql"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [built] = out.glob("sangsaeng-*.whl")
    return built


def test_the_wheel_holds_every_module(wheel: Path) -> None:
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {"sangsaeng/demo/caravan.toml", "sangsaeng/server/db/migrations/script.py.mako"}
    for folder in ("sangsaeng", "shared", "client", "server", "audit"):
        prefix = "sangsaeng" if folder == "sangsaeng" else f"sangsaeng/{folder}"
        expected |= {f"{prefix}/{path.relative_to(ROOT / folder).as_posix()}"
                     for path in (ROOT / folder).rglob("*.py")
                     if not path.is_relative_to(ROOT / "sangsaeng" / folder)}
    assert len(expected) > 80
    assert expected <= shipped, sorted(expected - shipped)


def test_an_installed_wheel_migrates_a_store(wheel: Path, tmp_path: Path) -> None:
    """Installed as files (the editable install's finder comes after them on the path),
    the store's upgrade finds the revisions in site-packages and runs all of them."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(site), str(wheel)], check=True, capture_output=True,
                   timeout=300)
    db = tmp_path / "store.db"
    with sqlite3.connect(db) as legacy:
        legacy.executescript(LEGACY_STORE.read_text())
    upgrade = ("import sys\n"
               "from sangsaeng.server.db import schema\n"
               "from sangsaeng.server.db.engine import store_engine\n"
               "print(schema.__file__)\n"
               "print(*schema.upgrade(store_engine(sys.argv[1])), sep=' -> ')")
    done = subprocess.run([sys.executable, "-c", upgrade, f"sqlite:///{db}"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"{site}/sangsaeng/server/db/schema.py",
                                        "0001 (schema 6, from before migrations) -> 0005"]
