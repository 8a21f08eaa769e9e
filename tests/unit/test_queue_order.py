"""The queue's order and the fleet's room, as pure functions: moved to top, priority, fair
share between launchers, age; best-fit booking of slots and GPUs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from backend.runqueue.order import Fleet, Room, Waiting, gpus_of_queue, ordered

T0 = datetime(2026, 12, 4, tzinfo=UTC)


def _waiting(run_id: int, launcher: int | None, priority: str = "normal", **kw: object) -> Waiting:
    created = T0 + timedelta(seconds=run_id)
    return Waiting(run_id, "q", priority, launcher, created, **kw)  # type: ignore[arg-type]


def test_fair_share_takes_turns_between_launchers_counting_what_is_in_flight() -> None:
    busy = [_waiting(i, launcher=1) for i in range(1, 201)]
    single = _waiting(500, launcher=2)
    order = [w.run_id for w in ordered([*busy, single], in_flight={})]
    assert order.index(500) == 1, "a colleague's one run goes second, not 201st"
    # launcher 1 already trains 3 runs: launcher 2's run goes first
    order = [w.run_id for w in ordered([*busy, single], in_flight={1: 3})]
    assert order[0] == 500


def test_top_then_priority_then_age() -> None:
    runs = [
        _waiting(1, 1, "low"),
        _waiting(2, 1, "normal"),
        _waiting(3, 1, "high"),
        _waiting(4, 1, "normal", moved_to_top_at=T0),
        _waiting(5, 1, "low", moved_to_top_at=T0 + timedelta(seconds=1)),
    ]
    assert [w.run_id for w in ordered(runs, in_flight={})] == [5, 4, 3, 2, 1]


def test_best_fit_keeps_big_hosts_for_big_runs() -> None:
    fleet = Fleet(
        rooms=[Room("cpu", slots=1, gpus=0, free_gpus=0), Room("big", slots=2, gpus=2, free_gpus=2)]
    )
    assert gpus_of_queue("fb.gpus-2") == 2 and gpus_of_queue("fb") == 0
    assert fleet.take("fb") == "cpu", "a CPU run goes to the CPU host"
    assert fleet.take("fb.gpus-2") == "big"
    assert fleet.take("fb.gpus-1") is None, "both GPUs are held"
    assert fleet.take("fb") == "big" and fleet.full()


def test_ten_thousand_queued_runs_are_ordered_quickly() -> None:
    runs = [
        _waiting(i, launcher=i % 37, priority=("low", "normal", "high")[i % 3])
        for i in range(10_000)
    ]
    started = time.perf_counter()
    order = ordered(runs, in_flight={})
    elapsed = time.perf_counter() - started
    assert len(order) == 10_000
    assert elapsed < 0.5, f"{elapsed * 1000:.0f} ms"
