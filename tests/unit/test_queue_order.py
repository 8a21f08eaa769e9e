"""The queue's order and the fleet's room, as pure functions: moved to top, priority, fair
share between launchers, age; best-fit booking of slots and GPUs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from backend.runqueue.order import Fleet, Room, Waiting, gpus_of_queue, ordered
from backend.spec.gpus import Demand, demand_of, gpu_matches

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
        rooms=[Room("cpu", slots=1), Room("big", slots=2, gpus=["G"] * 2, free=["G"] * 2)]
    )
    assert gpus_of_queue("fb.gpus-2") == 2 and gpus_of_queue("fb") == 0
    assert fleet.take(Demand()) == "cpu", "a CPU run goes to the CPU host"
    assert fleet.take(Demand(gpus=2)) == "big"
    assert fleet.take(Demand(gpus=1)) is None, "both GPUs are held"
    assert fleet.take(Demand()) == "big" and fleet.full()


A100 = "NVIDIA A100-SXM4-80GB"
V100 = "Tesla V100-PCIE-16GB"


def test_a_gpu_type_and_a_pool_book_only_workers_that_offer_them() -> None:
    mixed = Room("mixed", slots=4, gpus=[A100, V100, V100], free=[A100, V100, V100])
    research = Room("research", slots=1, gpus=[A100] * 2, free=[A100] * 2, pool="research")
    cpu = Room("cpu", slots=4)
    fleet = Fleet(rooms=[cpu, mixed, research])
    assert fleet.take(Demand(gpus=2, gpu_type="a100")) == "research", "case-insensitive part"
    assert fleet.take(Demand(gpus=2, gpu_type="A100")) is None, "mixed has one A100 only"
    assert fleet.take(Demand(gpus=1, gpu_type="A100")) == "mixed"
    assert mixed.free == [V100, V100], "the A100 is what it held"
    assert fleet.take(Demand(gpus=1, gpu_type="A100")) is None, "every A100 is held"
    assert fleet.take(Demand(pool="research")) is None, "its pool's slots are gone"
    assert fleet.take(Demand(gpus=1, pool="other")) is None
    # a pooled worker still takes runs that ask for no pool; the CPU host never a GPU run
    assert fleet.take(Demand(gpus=2)) == "mixed"
    assert fleet.take(Demand(gpus=1)) is None
    assert cpu.slots == 4


def test_a_constrained_run_skips_workers_that_have_no_queue_of_their_own() -> None:
    old = Room("old", slots=1, gpus=[A100], free=[A100], own_queue=False)
    fleet = Fleet(rooms=[old])
    assert fleet.take(Demand(gpus=1, gpu_type="A100")) is None
    assert fleet.take(Demand(gpus=1)) == "old"


def test_demand_of_a_spec() -> None:
    assert demand_of(None) == Demand()
    assert demand_of({"resources": {"gpu_type": "A100"}}) == Demand(1, "A100")
    assert demand_of({"resources": {"gpus": 3, "pool": "p"}}) == Demand(3, None, "p")
    assert Demand(2, "A100", "research").describe() == "2 GPUs of type A100 in pool research"
    assert not Demand(2).constrained and Demand(pool="x").constrained
    assert gpu_matches(A100, " a100 ") and not gpu_matches(V100, "A100")
    assert gpu_matches(V100, None)


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


def test_a_workers_own_queue_fits_the_runs_table_and_maps_back() -> None:
    from backend.broker import QUEUE_MAX_CHARS, worker_of_queue, worker_queue

    short = worker_queue("fitboard", "fitboard-1@gpu-a")
    assert short == "fitboard.on-fitboard-1@gpu-a"
    long_name = "fitboard-1@" + "rack-7-" * 40 + "gpu.example.org"
    long_queue = worker_queue("fitboard", long_name)
    assert len(long_queue) <= QUEUE_MAX_CHARS
    assert long_queue != worker_queue("fitboard", long_name + "x"), "names stay apart"
    names = {"fitboard-1@gpu-a", long_name}
    assert worker_of_queue(long_queue, "fitboard", names) == long_name
    assert worker_of_queue(short, "fitboard", names) == "fitboard-1@gpu-a"
    assert worker_of_queue(short, "fitboard", {"other@host"}) == "", "not online"
    assert worker_of_queue("fitboard.gpus-2", "fitboard", names) is None, "a shared queue"
