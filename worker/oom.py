"""Telling the kernel's OOM killer apart from any other SIGKILL.

A training process killed by SIGKILL may have been killed by a person (``kill -9``: worth a
retry) or by the kernel for want of memory (a retry would fail the same way). The kernel counts
its OOM kills: per cgroup (v2 ``memory.events``, v1 ``memory.oom_control``; a training process
shares its worker's cgroup, and a container's limit is that cgroup's) and host-wide
(``/proc/vmstat``). The worker reads a counter before it starts a training process and after
that process died of SIGKILL: a larger count means the OOM killer struck meanwhile.
"""

from __future__ import annotations

import re
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")


def kills() -> int | None:
    """The kernel's OOM-kill count that covers this process (its cgroup's when the kernel
    keeps one, else the host's); None where neither can be read (not Linux)."""
    for read in (_cgroup_v2, _cgroup_v1, _vmstat):
        count = read()
        if count is not None:
            return count
    return None


def struck(before: int | None) -> bool:
    """Whether the OOM killer struck since ``before`` was read."""
    if before is None:
        return False
    after = kills()
    return after is not None and after > before


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path for ``controller`` ('' for the v2 unified hierarchy)."""
    try:
        lines = (PROC / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.split(",") == [controller] or controller in controllers.split(","):
            return path
    return None


def _field(text: str, name: str) -> int | None:
    match = re.search(rf"^{name} (\d+)$", text, flags=re.M)
    return int(match.group(1)) if match else None


def _cgroup_v2() -> int | None:
    path = _own_cgroup("")
    if path is None:
        return None
    for base in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        try:
            return _field((base / path.lstrip("/") / "memory.events").read_text(), "oom_kill")
        except OSError:
            continue
    return None


def _cgroup_v1() -> int | None:
    path = _own_cgroup("memory")
    if path is None:
        return None
    try:
        text = (CGROUP_ROOT / "memory" / path.lstrip("/") / "memory.oom_control").read_text()
    except OSError:
        return None
    return _field(text, "oom_kill")


def _vmstat() -> int | None:
    try:
        return _field((PROC / "vmstat").read_text(), "oom_kill")
    except OSError:
        return None
