"""``python -m worker.trainer RUN_ID``: train one claimed run in this process."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time

# before TensorFlow loads: keep its C++ start-up chatter out of the run log
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# set in a standby trainer when the worker handed it its run (its imports were done before)
WARM_SINCE_ENV = "FITBOARD_WARM_SINCE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.trainer", description=__doc__)
    parser.add_argument("run_id", type=int, nargs="?", help="id of a run in status running")
    parser.add_argument(
        "--standby",
        action="store_true",
        help="import Keras and TensorFlow now, then train the run the worker hands over on "
        "stdin (one JSON line: run_id, log, env): a warm start",
    )
    parser.add_argument(
        "--claim",
        action="store_true",
        help="claim a queued run first (normally the worker does this before spawning us)",
    )
    args = parser.parse_args(argv)
    from backend.client.streaming import TRAINER_SWITCH_INTERVAL_S

    # the flusher thread gets the GIL within 1 ms of asking (default 5 ms) while the training
    # thread runs Python (callbacks, a checkpoint): a batch reaches live viewers that much sooner
    sys.setswitchinterval(TRAINER_SWITCH_INTERVAL_S)

    from backend.config import get_settings

    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for chatty in ("httpx", "httpcore"):  # each batch posted is a request: not a log line each
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from worker import lifeline

    lifeline.bind_to_supervisor()  # first: no training without a live worker watching
    nice = get_settings().trainer_nice
    if nice and os.environ.get(lifeline.SUPERVISOR_ENV):
        from worker.trainer import priority

        priority.lower(nice)  # the API and the worker stay responsive while this trains
    if args.standby:
        return _standby()
    if args.run_id is None:
        parser.error("give the run id (or --standby)")
    if args.claim:
        from worker import port

        run_port = port.for_run(args.run_id)
        if not run_port.claim(socket.gethostname()):
            logging.getLogger(__name__).error(
                "run=%s event=claim_refused (not queued)", args.run_id
            )
            return 1
        os.environ[lifeline.ATTEMPT_ENV] = str(run_port.attempt)

    from backend import heap
    from worker.trainer.train import run

    heap.settle()  # TensorFlow's objects leave the collector's view: no 100-200 ms pauses in fit
    return run(args.run_id)


def _standby() -> int:
    """Pay for the imports before the run exists; then take the run the worker hands over."""
    import json

    import keras  # noqa: F401  (the seconds a cold start spends before anything else)

    from backend import heap
    from worker.trainer import train

    heap.settle()  # TensorFlow's objects leave the collector's view (and this costs no run)

    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the worker let this standby go
    job = json.loads(line)
    os.environ.update({str(k): str(v) for k, v in job["env"].items()})
    os.environ[WARM_SINCE_ENV] = repr(time.time())
    log_fd = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)  # from now on this run's log, as a cold start's would be
    os.dup2(log_fd, 2)
    os.close(log_fd)
    return train.run(int(job["run_id"]))


if __name__ == "__main__":
    sys.exit(main())
