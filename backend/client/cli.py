"""`fitboard`: submit, watch, list, cancel and download runs; submit sweeps.

Every error ends with one line on stderr and a non-zero exit, never a traceback:
1 for an API, file or network error (and for a run that failed), 3 for a cancelled run,
130 on Ctrl-C; argparse's usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from backend.client.api import DEFAULT_URL, Fitboard
from backend.client.errors import FitboardError

EXIT_FAILED = 1
EXIT_CANCELLED = 3
STATUS_EXIT = {"succeeded": 0, "pruned": 0, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}


def _client(args: argparse.Namespace) -> Fitboard:
    return Fitboard(args.url, args.token)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _exit_for(run: dict[str, Any]) -> int:
    return STATUS_EXIT.get(str(run.get("status")), EXIT_FAILED)


def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        run = fb.submit_run(args.file, name=args.name)
        print(f"run {run['id']} {run['name']!r} {run['status']}: {fb.url}/runs/{run['id']}")
        if not args.wait:
            return 0
        final = fb.wait(run["id"], progress=not args.quiet)
        return _exit_for(final)


def cmd_sweep(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        sweep = fb.submit_sweep(args.file, name=args.name)
        print(f"sweep {sweep.get('id')} {sweep.get('name')!r} {sweep.get('status', '')}".rstrip())
        return 0


def cmd_runs(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        page = fb.runs(
            status=args.status,
            q=args.q,
            limit=args.limit,
            sort=args.sort,
            dataset=args.dataset,
            tag=args.tag,
        )
    if args.json:
        _print_json(page)
        return 0
    rows = page["items"]
    print(f"{'ID':>6}  {'STATUS':<10} {'SOURCE':<8} {'CREATED':<19}  {'NAME':<30} METRICS")
    for run in rows:
        metrics = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(run.get("final_metrics", {}).items())[:4]
        )
        print(
            f"{run['id']:>6}  {run['status']:<10} {run.get('source', 'worker'):<8} "
            f"{str(run['created_at'])[:19]:<19}  {run['name'][:30]:<30} {metrics}"
        )
    print(f"{len(rows)} of {page['total']} runs")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        final = fb.wait(args.run, progress=True)
        return _exit_for(final)


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        run = fb.cancel(args.run)
    state = "cancel requested" if run.get("cancel_requested") else run["status"]
    print(f"run {run['id']}: {run['status']} ({state})")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        paths = fb.download(args.run, args.dest, names=args.name or None)
    if not paths:
        print(f"run {args.run} has no artifacts" + (" with those names" if args.name else ""))
        return EXIT_FAILED
    for path in paths:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"Fitboard server (default: $FITBOARD_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--token", default=argparse.SUPPRESS, help="API token (default: $FITBOARD_TOKEN)"
    )
    parser = argparse.ArgumentParser(
        prog="fitboard",
        description="Submit, watch and fetch Fitboard training runs from a terminal.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "submit",
        parents=[common],
        help="queue a run from a YAML/JSON file",
        description="Queue a run. The file holds {name?, spec | preset, overrides?}, or a "
        "bare spec.",
    )
    p.add_argument("file", help="YAML or JSON file")
    p.add_argument("--name", help="run name (default: the file's name, or its 'name')")
    p.add_argument("--wait", action="store_true", help="watch it until it ends")
    p.add_argument("--quiet", action="store_true", help="with --wait: no progress bar")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser(
        "sweep",
        parents=[common],
        help="start a hyperparameter sweep from a YAML/JSON file",
        description="Start a sweep. The file holds the body of POST /api/v1/sweeps: name, spec "
        "| preset, overrides, space, strategy, objective, direction, max_trials, "
        "max_concurrent, pruner.",
    )
    p.add_argument("file", help="YAML or JSON file")
    p.add_argument("--name", help="sweep name (default: the file's name, or its 'name')")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "runs", parents=[common], help="list runs", description="List runs, newest first."
    )
    p.add_argument("--status", help="queued, running, succeeded, failed, cancelled (comma list)")
    p.add_argument("--q", help="words to find in name, tags or notes")
    p.add_argument("--dataset", help="dataset name")
    p.add_argument("--tag", action="append", help="runs with this tag (repeat for several)")
    p.add_argument("--sort", help="e.g. -created_at, name, metric:val_accuracy")
    p.add_argument("--limit", type=int, default=20, help="how many (default 20, at most 500)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "watch",
        parents=[common],
        help="live progress of a run until it ends",
        description="Draw a live progress bar with the latest metrics until the run ends. "
        "Exit 0 if it succeeded, 1 if it failed, 3 if it was cancelled.",
    )
    p.add_argument("run", type=int, help="run id")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser(
        "cancel",
        parents=[common],
        help="cancel a run",
        description="A queued run never starts; a running one stops within a couple of batches.",
    )
    p.add_argument("run", type=int, help="run id")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser(
        "download",
        parents=[common],
        help="download a run's artifacts",
        description="Save a run's artifacts (model, logs, ...) into a folder.",
    )
    p.add_argument("run", type=int, help="run id")
    p.add_argument("--dest", default=".", help="folder (default: the current one)")
    p.add_argument("--name", action="append", help="only this artifact (repeat for several)")
    p.set_defaults(func=cmd_download)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.url = getattr(args, "url", None) or os.environ.get("FITBOARD_URL")
    args.token = getattr(args, "token", None) or os.environ.get("FITBOARD_TOKEN")
    try:
        return int(args.func(args))
    except FitboardError as exc:
        print(f"fitboard: error: {exc.message()}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("fitboard: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # writing a download, a closed pipe
        print(f"fitboard: error: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
