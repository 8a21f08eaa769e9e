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
    GPUs (less those its runs hold)."""

    name: str
    slots: int
    gpus: int
    free_gpus: int


@dataclass
class Fleet:
    """The online workers of one queue family; ``take`` books room for a run on a queue."""

    rooms: list[Room] = field(default_factory=list)

    def full(self) -> bool:
        return all(room.slots <= 0 for room in self.rooms)

    def take(self, queue: str) -> str | None:
        """Book a slot (and GPUs) on the best-fitting worker for a run on ``queue``; the
        worker's name, or None when no worker has room now."""
        wanted = gpus_of_queue(queue)
        fits = [r for r in self.rooms if r.slots > 0 and r.free_gpus >= wanted]
        if not fits:
            return None
        # best fit: keep the big hosts' GPUs for the runs that need many
        room = min(fits, key=lambda r: (r.free_gpus - wanted, r.gpus, r.name))
        room.slots -= 1
        # a run without a GPU count takes one GPU on a GPU worker, when one is free
        room.free_gpus -= wanted if wanted else min(1, room.free_gpus)
        return room.name
