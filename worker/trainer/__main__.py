"""``python -m worker.trainer RUN_ID``: train one claimed run in this process."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

# before TensorFlow loads: keep its C++ start-up chatter out of the run log
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.trainer", description=__doc__)
    parser.add_argument("run_id", type=int, help="id of a run in status running")
    parser.add_argument(
        "--claim",
        action="store_true",
        help="claim a queued run first (normally the worker does this before spawning us)",
    )
    args = parser.parse_args(argv)

    from backend.config import get_settings

    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.claim:
        from backend.db.session import session_scope
        from backend.runs import service as runs

        with session_scope() as session:
            if not runs.claim(session, run_id=args.run_id, worker_host=socket.gethostname()):
                logging.getLogger(__name__).error(
                    "run=%s event=claim_refused (not queued)", args.run_id
                )
                return 1

    from worker.trainer.train import run

    return run(args.run_id)


if __name__ == "__main__":
    sys.exit(main())
