"""worker.oom reads the kernel's OOM-kill counters (cgroup v2, v1, host-wide), and the worker
names an OOM kill in the reason it records, so the API does not retry it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from worker import oom, runner


def _fake_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, cgroup: str) -> Path:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "vmstat").write_text("nr_free_pages 12\noom_kill 7\npgfault 3\n")
    monkeypatch.setattr(oom, "PROC", proc)
    monkeypatch.setattr(oom, "CGROUP_ROOT", root)
    return root


def test_cgroup_v2_counts_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_system(tmp_path, monkeypatch, cgroup="0::/system.slice/worker.service\n")
    events = root / "system.slice" / "worker.service" / "memory.events"
    events.parent.mkdir(parents=True)
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    before = oom.kills()
    assert before == 1
    assert not oom.struck(before)
    events.write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    assert oom.struck(before)


def test_cgroup_v1_then_the_hosts_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_system(tmp_path, monkeypatch, cgroup="4:memory:/docker/abc\n0::/\n")
    control = root / "memory" / "docker" / "abc" / "memory.oom_control"
    control.parent.mkdir(parents=True)
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
    assert oom.kills() == 5
    control.unlink()
    assert oom.kills() == 7  # /proc/vmstat: host-wide


def test_nothing_readable_never_claims_an_oom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oom, "PROC", tmp_path / "none")
    monkeypatch.setattr(oom, "CGROUP_ROOT", tmp_path / "none")
    assert oom.kills() is None
    assert not oom.struck(None)


def test_the_reason_names_the_oom_killer_only_for_sigkill() -> None:
    oom_reason = runner._exit_reason(-signal.SIGKILL, oom_killed=True)
    assert "OOM killer" in oom_reason and "out of memory" in oom_reason
    assert runner._exit_reason(-signal.SIGKILL) == "the training process was killed by SIGKILL"
    assert "OOM" not in runner._exit_reason(-signal.SIGTERM, oom_killed=True)


def test_this_machine_has_a_counter() -> None:
    """Linux keeps one (the e2e machines are Linux): the worker can tell."""
    assert oom.kills() is not None
