"""Fitboard's runtime requirements for the image, one a line, from pyproject.toml.

    python docker/requirements.py cpu   # [project].dependencies as they are
    python docker/requirements.py gpu   # the same, TensorFlow as tensorflow[and-cuda], same pin

The Dockerfile installs these before it copies the source, so a code change keeps the
dependency layer. Standard library only (it runs before anything is installed).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
TENSORFLOW = {"tensorflow", "tensorflow-cpu"}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(flavor: str, pyproject: Path = PYPROJECT) -> list[str]:
    deps: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    if flavor == "cpu":
        return list(deps)
    if flavor != "gpu":
        raise ValueError(f"flavor is cpu or gpu, not {flavor!r}")
    pins = {
        match.group(1)
        for dep in deps
        if _name(dep) in TENSORFLOW
        for match in [re.search(r"==\s*([0-9][^;,\s]*)", dep)]
        if match is not None
    }
    if len(pins) != 1:
        raise ValueError(f"expected one pinned TensorFlow version in pyproject.toml, got {pins}")
    others = [dep for dep in deps if _name(dep) not in TENSORFLOW]
    return [*others, f"tensorflow[and-cuda]=={pins.pop()}"]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docker/requirements.py cpu|gpu")
    print("\n".join(requirements(sys.argv[1])))
