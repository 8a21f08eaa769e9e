"""The architecture's import contracts hold (pyproject's [tool.importlinter], as `make lint`):
a worker never imports the database, SQLAlchemy or the HTTP server; the spec is a leaf; domain
services know nothing of HTTP; the client (with the streaming core) imports no worker and no
server package; and no two domain packages under backend import each other, even indirectly
(routes, FastAPI dependencies, the app and the command lines excepted)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("no package cycles between domain packages",)


def test_import_contracts_are_kept() -> None:
    program = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert program, "lint-imports is installed with the test extra (import-linter)"
    proc = subprocess.run(
        [program, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
    contracts = " ".join(proc.stdout.split())  # long names wrap
    for name in REQUIRED:
        assert f"{name} KEPT" in contracts, f"the contract {name!r} is checked"
