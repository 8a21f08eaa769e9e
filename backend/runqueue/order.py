"""The queue's order and the fleet's free slots, as pure functions (no database): the
dispatcher (backend.runqueue.service) and GET /api/v1/queue both read them.

Order: runs an admin moved to the top (latest move first), then by priority (high, normal,
low); at one priority, fair share between launchers: the launcher with the fewest runs
running or already sent goes next (round robin, so one person's 200 sweep trials do not
starve a colleague's single run); then the oldest first.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from backend.broker import GPUS_SUFFIX
from backend.spec.gpus import Demand, gpu_matches, pool_matches

PRIORITIES = ("high", "normal", "low")
RANK = {name: rank for rank, name in enumerate(PRIORITIES)}


@dataclass(frozen=True)
class Waiting:
    """A queued run the dispatcher holds back until a worker has room for it."""

    run_id: int
    queue: str
    priority: str
    launcher: int | None
    created_at: datetime
    moved_to_top_at: datetime | None = None
    demand: Demand = field(default_factory=Demand)


def ordered(waiting: Iterable[Waiting], *, in_flight: Mapping[int | None, int]) -> list[Waiting]:
    """The runs in the order they will start; ``in_flight``: runs per launcher running or
    already sent to the broker (fair share counts them)."""
    runs = list(waiting)
    first = sorted(
        (w for w in runs if w.moved_to_top_at is not None),
        key=lambda w: (w.moved_to_top_at, -w.run_id),
        reverse=True,
    )
    out = list(first)
    counts: dict[int | None, int] = defaultdict(int, in_flight)
    for w in first:
        counts[w.launcher] += 1
    rest = [w for w in runs if w.moved_to_top_at is None]
    for priority in PRIORITIES:
        by_launcher: dict[int | None, deque[Waiting]] = defaultdict(deque)
        for w in sorted(
            (w for w in rest if w.priority == priority), key=lambda w: (w.created_at, w.run_id)
        ):
            by_launcher[w.launcher].append(w)
        # (launcher's runs in flight or ahead, its next run's age, run id): smallest goes next
        heap = [
            (counts[launcher], line[0].created_at, line[0].run_id, launcher)
            for launcher, line in by_launcher.items()
        ]
        heapq.heapify(heap)
        while heap:
            _, _, _, launcher = heapq.heappop(heap)
            line = by_launcher[launcher]
            out.append(line.popleft())
            counts[launcher] += 1
            if line:
                heapq.heappush(
                    heap, (counts[launcher], line[0].created_at, line[0].run_id, launcher)
                )
    return out


def gpus_of_queue(queue: str) -> int:
    """The GPUs a run on ``queue`` asks for (0 on a base queue)."""
    _, sep, count = queue.rpartition(GPUS_SUFFIX)
    return int(count) if sep and count.isdigit() else 0


@dataclass
class Room:
    """What one online worker has free: run slots (its concurrency less what it trains) and
    GPUs (by name, less those its runs hold), and the pool it declares."""

    name: str
    slots: int
    gpus: list[str] = field(default_factory=list)
    free: list[str] = field(default_factory=list)
    pool: str | None = None
    own_queue: bool = True  # it consumes its own queue (a worker from before them does not)

    def fits(self, demand: Demand) -> bool:
        return (
            self.slots > 0
            and (self.own_queue or not demand.constrained)
            and pool_matches(self.pool, demand.pool)
            and self.free_of(demand.gpu_type) >= demand.min_gpus
        )

    def free_of(self, gpu_type: str | None) -> int:
        return sum(1 for name in self.free if gpu_matches(name, gpu_type))

    def hold(self, demand: Demand, *, names: list[str] | None = None) -> None:
        """Book a slot and the GPUs a run of ``demand`` takes (auto: one when one is free);
        ``names``: the GPUs it is known to hold."""
        self.slots -= 1
        if names is not None:
            for name in names:
                if name in self.free:
                    self.free.remove(name)
            return
        wanted = demand.min_gpus if demand.gpus is not None else min(1, len(self.free))
        for _ in range(wanted):
            match = next((n for n in self.free if gpu_matches(n, demand.gpu_type)), None)
            if match is None:
                break
            self.free.remove(match)


@dataclass
class Fleet:
    """The online workers of one queue family; ``take`` books room for a run."""

    rooms: list[Room] = field(default_factory=list)

    def full(self) -> bool:
        return all(room.slots <= 0 for room in self.rooms)

    def take(self, demand: Demand, *, on: str | None = None) -> str | None:
        """Book a slot (and GPUs) on the best-fitting worker (``on``: that one only) for a run
        of ``demand``; the worker's name, or None when no worker has room now."""
        fits = [r for r in self.rooms if (on is None or r.name == on) and r.fits(demand)]
        if not fits:
            return None
        # best fit: keep the big hosts' GPUs (and those of a type asked for) for the runs
        # that need them
        room = min(
            fits,
            key=lambda r: (len(r.free) - demand.min_gpus, len(r.gpus), r.pool is not None, r.name),
        )
        room.hold(demand)
        return room.name
