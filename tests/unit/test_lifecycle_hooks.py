"""The run and sweep lifecycle hooks (backend.lifecycle) are installed where runs change: the
app factory installs them (with the live views' run state reader), and a run that changes
state in a process that never did raises instead of silently skipping the run queue, the
sweep or the notifications."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from backend import lifecycle
from backend.events import runstate
from backend.runs import hooks as run_hooks
from backend.runs.models import Run
from backend.sweeps import hooks as sweep_hooks


@pytest.fixture
def no_hooks() -> Iterator[None]:
    for module in (run_hooks, sweep_hooks, runstate):
        module.uninstall()
    yield
    lifecycle.install()  # as the rest of the session expects


@pytest.mark.usefixtures("no_hooks")
def test_the_app_factory_installs_the_hooks() -> None:
    from backend.api.app import create_app

    assert not lifecycle.installed()
    create_app()
    assert lifecycle.installed()


@pytest.mark.usefixtures("no_hooks")
def test_a_hook_fired_before_install_raises() -> None:
    session = Session()
    with pytest.raises(run_hooks.HooksNotInstalled):
        run_hooks.queue_changed(session)
    with pytest.raises(run_hooks.HooksNotInstalled):
        sweep_hooks.sweep_ended(session, 1)
    with pytest.raises(run_hooks.HooksNotInstalled):
        runstate.state(session, 1)


@pytest.mark.usefixtures("no_hooks")
def test_a_run_end_is_told_then_frees_its_slot_then_feeds_its_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        lifecycle.notify_outbox, "run_ended", lambda _s, *, run: calls.append("notify")
    )
    monkeypatch.setattr(
        lifecycle.runqueue, "release_after_commit", lambda _s: calls.append("release")
    )
    monkeypatch.setattr(
        lifecycle.sweep_scheduler,
        "trial_finished",
        lambda _s, *, sweep_id: calls.append(f"sweep {sweep_id}"),
    )
    lifecycle.install()
    session = Session()
    run_hooks.run_ended(session, Run(id=1, sweep_id=7))
    run_hooks.run_ended(session, Run(id=2, sweep_id=None))
    assert calls == ["notify", "release", "sweep 7", "notify", "release"]
