"""`fitboard`: submit, watch, list, cancel, resume, fork and download runs; submit sweeps.

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


NOTIFY_EVENTS = ("ended", "failed", "stalled")
NOTIFY_CHANNELS = ("webhook", "browser")


def _comma_list(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        wrong = [item for item in items if item not in allowed]
        if wrong or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: a comma list of {', '.join(allowed)}")
        return list(dict.fromkeys(items))

    return parse


def _notify(args: argparse.Namespace) -> dict[str, Any] | None:
    """The body's ``notify`` from --notify [EVENTS] and --notify-via CHANNELS."""
    if args.notify is None:
        return None
    via = args.notify_via or list(NOTIFY_CHANNELS)
    return {"on": args.notify, "webhook": "webhook" in via, "browser": "browser" in via}


def _add_notify(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--notify",
        nargs="?",
        const=list(NOTIFY_EVENTS),
        type=_comma_list(NOTIFY_EVENTS),
        metavar="EVENTS",
        help=f"tell me when the {what} ends, fails or stalls: a comma list of "
        "ended,failed,stalled (alone: all three), sent to the webhook and browser set on your "
        "Account page",
    )
    p.add_argument(
        "--notify-via",
        type=_comma_list(NOTIFY_CHANNELS),
        metavar="CHANNELS",
        help="with --notify: webhook, browser or both (default both)",
    )


def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        run = fb.submit_run(args.file, name=args.name, notify=_notify(args))
        print(f"run {run['id']} {run['name']!r} {run['status']}: {fb.url}/runs/{run['id']}")
        if not args.wait:
            return 0
        final = fb.wait(run["id"], progress=not args.quiet)
        return _exit_for(final)


def cmd_sweep(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        sweep = fb.submit_sweep(args.file, name=args.name, notify=_notify(args))
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


def cmd_resume(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        run = fb.resume(args.run, epochs=args.epochs)
        epochs = run["spec"]["fit"]["epochs"]
        print(
            f"run {run['id']} {run['name']!r} {run['status']} (attempt {run['attempt']}, "
            f"to epoch {epochs}): {fb.url}/runs/{run['id']}"
        )
        if not args.wait:
            return 0
        return _exit_for(fb.wait(run["id"], progress=not args.quiet))


def parse_set(item: str) -> dict[str, Any]:
    """``a.b.c=value`` as {"a": {"b": {"c": value}}}; the value read as JSON when it is JSON
    (numbers, true/false, null, lists, objects), else kept as text."""
    path, sep, raw = item.partition("=")
    keys = path.strip().split(".")
    if not sep or not all(keys):
        raise argparse.ArgumentTypeError(f"expected path=value (fit.epochs=8), got {item!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    for key in reversed(keys):
        value = {key: value}
    return dict(value)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(out.get(key), dict) and isinstance(value, dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def cmd_fork(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    for item in args.set or ():
        overrides = _merge(overrides, item)
    with _client(args) as fb:
        run = fb.fork(args.run, name=args.name, from_epoch=args.from_epoch, overrides=overrides)
        start = run.get("forked_from") or {}
        print(
            f"run {run['id']} {run['name']!r} {run['status']} (forked from run {args.run} at "
            f"epoch {start.get('epoch')}): {fb.url}/runs/{run['id']}"
        )
        if not args.wait:
            return 0
        return _exit_for(fb.wait(run["id"], progress=not args.quiet))


def cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as fb:
        paths = fb.download(args.run, args.dest, names=args.name or None)
    if not paths:
        print(f"run {args.run} has no artifacts" + (" with those names" if args.name else ""))
        return EXIT_FAILED
    for path in paths:
        print(path)
    return 0


# Each command's examples, shown under its --help. RUN_ID stands for a run's id (submit prints
# it); the rest runs as written from the repository's root: tests/e2e/test_examples.py runs
# every line against a live stack.
EXAMPLES = {
    "submit": [
        "fitboard submit examples/digits.yaml --wait    # progress bar until it ends",
        'fitboard submit examples/digits.yaml --name "digits again"',
        "fitboard submit examples/digits.yaml --notify failed,stalled   # webhook and browser",
    ],
    "sweep": [
        "fitboard sweep examples/sweep.yaml",
        "fitboard sweep examples/sweep.yaml --notify --notify-via webhook",
    ],
    "runs": [
        "fitboard runs --status running",
        "fitboard runs --status succeeded,failed --sort -metric:val_accuracy --limit 5",
        "fitboard runs --q digits --json",
    ],
    "watch": ["fitboard watch RUN_ID"],
    "cancel": ["fitboard cancel RUN_ID"],
    "resume": ["fitboard resume RUN_ID --epochs 4 --wait   # 2 more epochs, same run"],
    "fork": [
        'fitboard fork RUN_ID --name "digits, lower lr" --from-epoch 3 '
        "--set compile.optimizer.learning_rate=0.0003 --set fit.epochs=6",
    ],
    "download": [
        "fitboard download RUN_ID --dest out/              # every artifact",
        "fitboard download RUN_ID --name model.keras       # only the model",
    ],
}


class _ExamplesFormatter(argparse.HelpFormatter):
    """Wraps a description as usual; prints the examples' lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _epilog(command: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[command])


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
        epilog=_epilog("submit"),
        formatter_class=_ExamplesFormatter,
        help="queue a run from a YAML/JSON file",
        description="Queue a run. The file holds {name?, spec | preset, overrides?}, or a "
        "bare spec.",
    )
    p.add_argument("file", help="YAML or JSON file")
    p.add_argument("--name", help="run name (default: the file's name, or its 'name')")
    p.add_argument("--wait", action="store_true", help="watch it until it ends")
    p.add_argument("--quiet", action="store_true", help="with --wait: no progress bar")
    _add_notify(p, "run")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser(
        "sweep",
        parents=[common],
        epilog=_epilog("sweep"),
        formatter_class=_ExamplesFormatter,
        help="start a hyperparameter sweep from a YAML/JSON file",
        description="Start a sweep. The file holds the body of POST /api/v1/sweeps: name, spec "
        "| preset, overrides, space, strategy, objective, direction, max_trials, "
        "max_concurrent, pruner.",
    )
    p.add_argument("file", help="YAML or JSON file")
    p.add_argument("--name", help="sweep name (default: the file's name, or its 'name')")
    _add_notify(p, "sweep")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "runs",
        parents=[common],
        help="list runs",
        description="List runs, newest first.",
        epilog=_epilog("runs"),
        formatter_class=_ExamplesFormatter,
    )
    p.add_argument("--status", help="queued, running, succeeded, failed, cancelled (comma list)")
    p.add_argument("--q", help="words to find in name, tags or notes")
    p.add_argument("--dataset", help="dataset name")
    p.add_argument("--tag", action="append", help="runs with this tag (repeat for several)")
    p.add_argument(
        "--sort",
        help="field, '-' first for descending: -created_at (the default), name, "
        "metric:val_accuracy, -metric:val_accuracy, param:fit.epochs",
    )
    p.add_argument("--limit", type=int, default=20, help="how many (default 20, at most 500)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "watch",
        parents=[common],
        epilog=_epilog("watch"),
        formatter_class=_ExamplesFormatter,
        help="live progress of a run until it ends",
        description="Draw a live progress bar with the latest metrics until the run ends. "
        "Exit 0 if it succeeded, 1 if it failed, 3 if it was cancelled.",
    )
    p.add_argument("run", type=int, help="run id")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser(
        "cancel",
        parents=[common],
        epilog=_epilog("cancel"),
        formatter_class=_ExamplesFormatter,
        help="cancel a run",
        description="A queued run never starts; a running one stops within a couple of batches.",
    )
    p.add_argument("run", type=int, help="run id")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser(
        "resume",
        parents=[common],
        epilog=_epilog("resume"),
        formatter_class=_ExamplesFormatter,
        help="resume a failed, cancelled or succeeded run from its newest checkpoint",
        description="Queue the run again as its next attempt: it goes on from its newest "
        "checkpoint, same run id, curves continuing. Exit codes with --wait as for watch.",
    )
    p.add_argument("run", type=int, help="run id")
    p.add_argument("--epochs", type=int, help="train up to this many epochs in all (more)")
    p.add_argument("--wait", action="store_true", help="watch it until it ends")
    p.add_argument("--quiet", action="store_true", help="with --wait: no progress bar")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser(
        "fork",
        parents=[common],
        epilog=_epilog("fork"),
        formatter_class=_ExamplesFormatter,
        help="a new run from another run's checkpoint, with spec changes",
        description="Start a new run from the run's checkpoint at --from-epoch (the newest by "
        "default) with its spec changed by --set; its curves start with the run's up to there. "
        "The model, dataset and compile settings stay (the checkpoint holds the model), but "
        "the learning rate may change.",
    )
    p.add_argument("run", type=int, help="the source run's id")
    p.add_argument("--name", required=True, help="the new run's name")
    p.add_argument("--from-epoch", type=int, help="the checkpoint's epoch (default: newest)")
    p.add_argument(
        "--set",
        action="append",
        type=parse_set,
        metavar="PATH=VALUE",
        help="a spec change, e.g. fit.epochs=8 (repeat for several; JSON values)",
    )
    p.add_argument("--wait", action="store_true", help="watch it until it ends")
    p.add_argument("--quiet", action="store_true", help="with --wait: no progress bar")
    p.set_defaults(func=cmd_fork)

    p = sub.add_parser(
        "download",
        parents=[common],
        epilog=_epilog("download"),
        formatter_class=_ExamplesFormatter,
        help="download a run's artifacts",
        description="Save a run's artifacts (model, logs, ...) into a folder.",
    )
    p.add_argument("run", type=int, help="run id")
    p.add_argument("--dest", default=".", help="folder (default: the current one)")
    p.add_argument("--name", action="append", help="only this artifact (repeat for several)")
    p.set_defaults(func=cmd_download)
    return parser


# options whose value may start with "-" (a descending sort): argparse would read
# "--sort -created_at" as two options, so the value is joined to its option first
DASH_VALUED = ("--sort",)


def _join_dash_values(argv: Sequence[str]) -> list[str]:
    joined: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        value = items[i + 1] if i + 1 < len(items) else None
        if item in DASH_VALUED and value is not None and value.startswith("-"):
            joined.append(f"{item}={value}")
            i += 2
            continue
        joined.append(item)
        i += 1
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_dash_values(sys.argv[1:] if argv is None else argv))
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
