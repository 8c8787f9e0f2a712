"""The wheel a partner installs holds every module of the repo, under sangsaeng.<room>
(the roles sit beside sangsaeng/ and reach it through symlinks), and the demo's task."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_every_module(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("sangsaeng-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {"sangsaeng/demo/caravan.toml"}
    for folder in ("sangsaeng", "shared", "client", "server", "audit"):
        prefix = "sangsaeng" if folder == "sangsaeng" else f"sangsaeng/{folder}"
        expected |= {f"{prefix}/{path.relative_to(ROOT / folder).as_posix()}"
                     for path in (ROOT / folder).rglob("*.py")
                     if not path.is_relative_to(ROOT / "sangsaeng" / folder)}
    assert len(expected) > 80
    assert expected <= shipped, sorted(expected - shipped)
