"""Linux's parent-death signal: a child asks to be sent ``sig`` the moment its parent dies,
whatever killed the parent (``kill -9`` included). Used by `make run` for the processes it
starts and by each training process for its worker."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal

PR_SET_PDEATHSIG = 1


def arm(sig: signal.Signals) -> bool:
    """Ask for ``sig`` when the parent dies; False where prctl is missing (not Linux) or
    refused. Safe to call between fork and exec (no allocation Python would need a lock for
    beyond ctypes' own)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
