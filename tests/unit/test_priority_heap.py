"""A training process trains at a lower CPU priority while its metric flusher keeps the
worker's (worker.trainer.priority), and a long-lived process leaves its start-up objects out
of the garbage collector's walks (backend.heap). Each check runs in a child process: both
change the process they run in for good."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from backend import heap

ROOT_DIR = __file__.rsplit("/tests/", 1)[0]


def _child(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice is per thread on Linux")
def test_threads_started_at_normal_keep_the_priority_the_rest_is_lowered() -> None:
    out = _child(
        """
        import os, threading
        from worker.trainer import priority

        def nice():
            return os.getpriority(os.PRIO_PROCESS, 0)

        base = nice()
        seen = {}
        def record(name):
            seen[name] = nice()

        priority.lower(5)
        direct = threading.Thread(target=record, args=("direct",))
        direct.start(); direct.join()
        normal = threading.Thread(target=record, args=("normal",))
        priority.at_normal(normal.start)
        normal.join()
        try:
            priority.at_normal(lambda: 1 / 0)
        except ZeroDivisionError:
            seen["raised"] = True
        print(seen["direct"] - base, seen["normal"] - base, nice() - base, seen.get("raised"))
        """
    )
    assert out == "5 0 5 True"


def test_without_lowering_at_normal_just_calls() -> None:
    assert (
        _child(
            """
        from worker.trainer import priority
        calls = []
        priority.at_normal(lambda: calls.append(1))
        print(calls)
        """
        )
        == "[1]"
    )


def test_settle_leaves_what_lives_now_out_of_collections() -> None:
    out = _child(
        """
        import gc
        from backend import heap

        before = [[]]
        heap.settle()
        after = [[]]
        tracked = gc.get_objects()
        print(any(o is before for o in tracked), any(o is after for o in tracked))
        """
    )
    assert out == "False True"


def test_the_server_process_settles_its_heap_once_the_app_is_made() -> None:
    frozen, thresholds = _child(
        "import gc, backend.main; print(gc.get_freeze_count(), tuple(gc.get_threshold()))"
    ).split(" ", 1)
    assert int(frozen) > 100_000  # FastAPI, SQLAlchemy, pydantic and the app itself
    assert thresholds == str(heap.SERVER_THRESHOLDS)  # young objects collected less often
