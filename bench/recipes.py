"""The tutorial's two headline recipes on the full real data, through Fitboard and as plain Keras.

mnist-mlp on the 60,000 MNIST training images (test accuracy, target >= 0.98) and imdb-lstm on
the 25,000 IMDB training reviews (validation accuracy on the 25,000 test reviews, target >= 0.85),
each trained in fresh processes two ways: by Fitboard's trainer (`python -m worker.trainer
RUN_ID` on a claimed run in a temporary SQLite database, as the worker spawns it) and by a plain
Keras script (the same data loader and model builder, model.fit(verbose=0)). Fit times are
compared (target: Fitboard <= 1.05 x plain) and the table goes to docs/benchmarks.md.

    FITBOARD_DATA_DIR=../shared/data python bench/recipes.py [--quick] [--only mnist|imdb]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.05
QUICK = {"train_limit": 1024, "test_limit": 1024, "epochs": 1}
# far above any real instance's ids: the run's Redis channels (fitboard:run:<id>) are global
RUN_ID_BASE = 900_000_000
# the part of docs/benchmarks.md this script writes; other scripts' sections stay as they are
SECTION_HEADING = "# Benchmarks: the tutorial's headline recipes"
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*event=fit_start")


@dataclass(frozen=True)
class Recipe:
    key: str
    preset: str
    target: float
    # "test": the trainer's evaluation on the test split; "val": the last epoch's val_accuracy
    accuracy_of: str


RECIPES = {
    "mnist": Recipe("mnist", "mnist-mlp", 0.98, "test"),
    "imdb": Recipe("imdb", "imdb-lstm", 0.85, "val"),
}


# --- the plain Keras script (a child process) -----------------------------------------------


def plain_job(job_path: Path) -> int:
    """Load the data and, unless only preparing it, fit and score the model as plain Keras."""
    job = json.loads(job_path.read_text())
    import keras

    from backend.spec import ExperimentSpec
    from worker.trainer import datasets
    from worker.trainer.build import build_model, prepare_targets

    spec = ExperimentSpec.model_validate(job["spec"])
    fit = spec.fit
    if fit.seed is not None:  # where the trainer seeds: before the data and the model
        keras.utils.set_random_seed(fit.seed)
    dataset = datasets.load(spec.dataset, data_dir=Path(job["data_dir"]))
    n_train, split = len(dataset.x_train), fit.validation_split or 0.0
    n_fit = int(n_train * (1.0 - split)) if split else n_train  # Keras' floor
    result: dict[str, Any] = {
        "sizes": {"train": n_train, "fit": n_fit, "test": len(dataset.x_test), "split": split},
        "keras": keras.__version__,
        "backend": keras.config.backend(),
        "tensorflow": _tensorflow_version(),
    }
    if not job["prepare_only"]:
        model = build_model(spec, dataset)
        kwargs: dict[str, Any] = {}
        if fit.validation_data == "test":
            kwargs["validation_data"] = (
                dataset.x_test,
                prepare_targets(spec, model, dataset.y_test),
            )
        elif split:
            kwargs["validation_split"] = split
        epoch_ends: list[float] = []
        clock = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda *_: epoch_ends.append(time.time())
        )
        started = time.time()
        history = model.fit(
            dataset.x_train,
            prepare_targets(spec, model, dataset.y_train),
            epochs=fit.epochs,
            batch_size=fit.batch_size,
            shuffle=fit.shuffle,
            callbacks=[clock],
            verbose=0,
            **kwargs,
        )
        if job["accuracy_of"] == "val":
            accuracy = history.history["val_accuracy"][-1]
        else:
            scores = model.evaluate(
                dataset.x_test, dataset.y_test, batch_size=256, verbose=0, return_dict=True
            )
            accuracy = scores["accuracy"]
        result.update(accuracy=float(accuracy), **_fit_times(started, epoch_ends))
    Path(job["result"]).write_text(json.dumps(result))
    return 0


def _tensorflow_version() -> str | None:
    import importlib.metadata

    for distribution in ("tensorflow-cpu", "tensorflow"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _fit_times(started: float, epoch_ends: list[float]) -> dict[str, Any]:
    marks = [started, *epoch_ends]
    return {
        "fit_s": epoch_ends[-1] - started if epoch_ends else None,
        "epoch_s": [b - a for a, b in itertools.pairwise(marks)],
    }


# --- the orchestrator -----------------------------------------------------------------------


def configure_environment(tmp: Path, data_dir: Path) -> str:
    """A fresh, migrated SQLite database and home that this process and its children share."""
    url = f"sqlite:///{tmp / 'fitboard.db'}"
    os.environ.update(
        DATABASE_URL=url,
        FITBOARD_HOME=str(tmp / "home"),
        FITBOARD_DATA_DIR=str(data_dir),
        FITBOARD_LOG_LEVEL="INFO",  # the trainer's event=fit_start line starts the fit clock
        PYTHONUNBUFFERED="1",  # as the worker spawns the trainer
        TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    )
    for name in ("FITBOARD_DATABASE_URL", "FITBOARD_ARTIFACTS_DIR"):
        os.environ.pop(name, None)
    from backend.config import get_settings

    get_settings.cache_clear()
    import backend.schema  # noqa: F401  (every mapper, before the first query)
    from backend.db.migrate import upgrade

    upgrade(url)
    # the trainer reaches Fitboard as on a worker: over the worker protocol of a real API
    import api_server  # bench/api_server.py

    api_url, token = api_server.start(url, tmp / "api-home")
    os.environ.update(FITBOARD_URL=api_url, FITBOARD_WORKER_TOKEN=token)
    get_settings.cache_clear()
    return url


def run_process(command: list[str], log_path: Path) -> tuple[int, float]:
    """Run a child with its output in a log file; its exit code and wall time."""
    started = time.perf_counter()
    with log_path.open("wb") as log:
        code = subprocess.call(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    return code, time.perf_counter() - started


class VariantFailed(RuntimeError):
    """A training process did not finish its run; the benchmark has no number for it."""


def _failure(what: str, log_path: Path) -> VariantFailed:
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
    return VariantFailed(f"{what}; the end of its log:\n{tail}")


def plain_fit(
    spec: dict[str, Any], recipe: Recipe, tmp: Path, *, tag: str, prepare: bool = False
) -> dict[str, Any]:
    job, result = tmp / f"{tag}.job.json", tmp / f"{tag}.result.json"
    job.write_text(
        json.dumps(
            {
                "spec": spec,
                "data_dir": os.environ["FITBOARD_DATA_DIR"],
                "accuracy_of": recipe.accuracy_of,
                "prepare_only": prepare,
                "result": str(result),
            }
        )
    )
    log_path = tmp / f"{tag}.log"
    code, seconds = run_process(
        [sys.executable, str(Path(__file__).resolve()), "--plain-job", str(job)], log_path
    )
    if code != 0 or not result.is_file():
        raise _failure(f"plain Keras script exited {code}", log_path)
    return {**json.loads(result.read_text()), "process_s": seconds}


def fitboard_fit(
    spec: dict[str, Any], recipe: Recipe, tmp: Path, *, url: str, run_id: int
) -> dict[str, Any]:
    """A claimed run trained by `python -m worker.trainer RUN_ID`; its numbers from the store."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from backend.db.session import session_scope
    from backend.evaluation.models import Evaluation
    from backend.events.models import RunEvent
    from backend.metrics.models import MetricPoint
    from backend.runs import service as runs
    from backend.runs.models import Run, RunStatus

    # the row directly, not runs.submit: that would also put the run on a Celery queue
    with session_scope(url) as session:
        session.add(Run(id=run_id, name=f"bench {recipe.preset}", preset=recipe.preset, spec=spec))
    with session_scope(url) as session:
        if not runs.claim(session, run_id=run_id, worker_host=socket.gethostname()):
            raise VariantFailed(f"run {run_id} could not be claimed")
    log_path = tmp / f"fitboard-{run_id}.log"
    code, seconds = run_process([sys.executable, "-m", "worker.trainer", str(run_id)], log_path)

    def values(session: Session, key: str) -> list[tuple[int, float | None, float]]:
        stmt = (
            select(MetricPoint.step, MetricPoint.value, MetricPoint.wall_time)
            .where(MetricPoint.run_id == run_id, MetricPoint.key == key)
            .order_by(MetricPoint.step)
        )
        return [(row.step, row.value, row.wall_time) for row in session.execute(stmt)]

    with session_scope(url) as session:
        run_row = runs.get(session, run_id)
        if code != 0 or run_row.status != RunStatus.succeeded.value:
            raise _failure(f"trainer exited {code}, run {run_row.status}", log_path)
        epochs, batches = values(session, "loss"), values(session, "batch/loss")
        begin = session.scalars(
            select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.kind == "train_begin")
        ).first()
        accuracy: float | None = None
        if recipe.accuracy_of == "val":
            accuracy = next((v for _, v, _ in reversed(values(session, "val_accuracy"))), None)
        elif (evaluation := session.get(Evaluation, run_id)) is not None:
            accuracy = evaluation.report.get("accuracy")
        stored_begin = begin.created_at.timestamp() if begin else None
        expected = (begin.data["steps_per_epoch"] or 0) * len(epochs) if begin else None
    fit_start = _fit_start(log_path)
    started = fit_start if fit_start is not None else stored_begin
    if started is None or accuracy is None:
        raise _failure("no event=fit_start log line, train_begin or accuracy stored", log_path)
    steps = [wall for _, _, wall in batches]
    return {
        "accuracy": accuracy,
        **_fit_times(started, [wall for _, _, wall in epochs]),
        "process_s": seconds,
        "clock_from_log": fit_start is not None,
        "train_begin_lag_s": stored_begin - fit_start if stored_begin and fit_start else None,
        "batch_points": len(batches),
        "expected_batch_points": expected,
        "median_step_ms": 1000 * statistics.median(b - a for a, b in itertools.pairwise(steps))
        if len(steps) > 1
        else None,
    }


def _fit_start(log_path: Path) -> float | None:
    """When the trainer called fit(): its log line (local time, milliseconds)."""
    for line in log_path.read_text(errors="replace").splitlines():
        match = _LOG_TIME.match(line)
        if match:
            return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def resolve(args: argparse.Namespace, recipe: Recipe) -> tuple[dict[str, Any], int]:
    """The preset with this invocation's epochs and slices; and the preset's own epochs."""
    from backend.spec import resolve_spec
    from backend.spec.presets import preset_spec

    preset_epochs = int(preset_spec(recipe.preset)["fit"]["epochs"])
    epochs = getattr(args, f"{recipe.key}_epochs") or preset_epochs
    overrides = {
        "dataset": {"train_limit": args.train_limit, "test_limit": args.test_limit},
        "fit": {"epochs": epochs},
    }
    spec = resolve_spec(preset=recipe.preset, overrides=overrides)
    return spec.model_dump(mode="json"), preset_epochs


def run_recipe(
    args: argparse.Namespace, recipe: Recipe, tmp: Path, url: str, first_id: int
) -> dict[str, Any]:
    spec, preset_epochs = resolve(args, recipe)
    fit = spec["fit"]
    print(f"{recipe.preset}: {_epochs(fit['epochs'])}, batch {fit['batch_size']}", flush=True)
    started = time.perf_counter()
    prepared = plain_fit(spec, recipe, tmp, tag=f"{recipe.key}-prepare", prepare=True)
    sizes = prepared["sizes"]
    print(
        f"  data: {_sizes_text(recipe, sizes)}; loaded once untimed in "
        f"{time.perf_counter() - started:.1f}s, so both variants find the same caches",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {"plain": [], "Fitboard": []}
    for repeat in range(args.repeats):
        order = ["plain", "Fitboard"] if repeat % 2 == 0 else ["Fitboard", "plain"]
        for variant in order:
            if variant == "plain":
                result = plain_fit(spec, recipe, tmp, tag=f"{recipe.key}-plain-{repeat}")
            else:
                run_id = first_id + repeat
                result = fitboard_fit(spec, recipe, tmp, url=url, run_id=run_id)
            results[variant].append(result)
            print(f"  {variant}: {_variant_line(recipe, result)}", flush=True)
    summary = {v: _median_of(rs) for v, rs in results.items()}
    return {
        "recipe": recipe.preset,
        "key": recipe.key,
        "target": recipe.target,
        "accuracy_of": recipe.accuracy_of,
        "epochs": fit["epochs"],
        "preset_epochs": preset_epochs,
        "batch_size": fit["batch_size"],
        "sizes": sizes,
        "versions": {k: prepared[k] for k in ("keras", "backend", "tensorflow")},
        "plain": summary["plain"],
        "fitboard": summary["Fitboard"],
        "ratio": summary["Fitboard"]["fit_s"] / summary["plain"]["fit_s"],
    }


def _median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("accuracy", "fit_s", "process_s")
    return {k: statistics.median(r[k] for r in results) for k in keys} | {
        "epoch_s": [
            statistics.median(e) for e in zip(*(r["epoch_s"] for r in results), strict=True)
        ]
    }


def _sizes_text(recipe: Recipe, sizes: dict[str, Any]) -> str:
    unit = "images" if recipe.key == "mnist" else "reviews"
    train = f"{sizes['train']:,} train {unit}"
    if sizes["split"]:
        validation = sizes["train"] - sizes["fit"]
        train += f" ({sizes['fit']:,} fit + {validation:,} validation split {sizes['split']:g})"
        return f"{train}, {sizes['test']:,} test"
    return f"{train}, {sizes['test']:,} test (the validation data)"


def _variant_line(recipe: Recipe, r: dict[str, Any]) -> str:
    epochs = ", ".join(f"{s:.1f}" for s in r["epoch_s"])
    line = (
        f"fit {r['fit_s']:.1f}s (epochs {epochs}), process {r['process_s']:.1f}s, "
        f"{_accuracy_name(recipe)} {r['accuracy']:.4f}"
    )
    if "batch_points" in r:
        lag = r["train_begin_lag_s"]
        step = r["median_step_ms"]
        line += f"; {r['batch_points']}/{r['expected_batch_points']} batch points stored"
        line += f", median step {step:.1f} ms" if step is not None else ""
        line += f", train_begin stored {lag:.2f}s after fit_start" if lag is not None else ""
        if not r["clock_from_log"]:
            line += " (no event=fit_start log line: clock from the stored train_begin)"
    return line


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def _accuracy_name(recipe: Recipe) -> str:
    return "test accuracy" if recipe.accuracy_of == "test" else "validation accuracy"


# --- reporting ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(report: dict[str, Any]) -> str:
    lines = [
        "| date | machine | recipe | data | epochs | batch | accuracy plain | accuracy Fitboard "
        "| target | fit s plain | fit s Fitboard | fit ratio | process s plain "
        "| process s Fitboard |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["recipes"]:
        p, f = r["plain"], r["fitboard"]
        lines.append(
            f"| {report['date']} | {report['machine']} | `{r['recipe']}` "
            f"| {_sizes_text(RECIPES[r['key']], r['sizes'])} | {r['epochs']} | {r['batch_size']} "
            f"| {p['accuracy']:.4f} | {f['accuracy']:.4f} "
            f"| {_accuracy_name(RECIPES[r['key']])} >= {r['target']} "
            f"| {p['fit_s']:.1f} | {f['fit_s']:.1f} | {r['ratio']:.3f} "
            f"| {p['process_s']:.1f} | {f['process_s']:.1f} |"
        )
    return "\n".join(lines)


def verdict(report: dict[str, Any]) -> str:
    lines = []
    smoke = report["smoke"]
    for r in report["recipes"]:
        for variant in ("plain", "fitboard"):
            accuracy = r[variant]["accuracy"]
            if accuracy < r["target"]:
                name = "Fitboard" if variant == "fitboard" else "plain Keras"
                line = (
                    f"{r['recipe']}: {name} {_accuracy_name(RECIPES[r['key']])} {accuracy:.4f} "
                    f"-- BELOW TARGET (>= {r['target']})"
                )
                if smoke:
                    line += " (smoke run: expected on slices)"
                elif r["key"] == "mnist" and r["epochs"] <= r["preset_epochs"]:
                    line += (
                        f": the preset's {r['preset_epochs']} epochs are not enough here; "
                        f"rerun with --mnist-epochs {r['preset_epochs'] + 5} (or more)"
                    )
                lines.append(line)
        if r["epochs"] != r["preset_epochs"]:
            lines.append(
                f"{r['recipe']}: trained {_epochs(r['epochs'])}; "
                f"the preset says {r['preset_epochs']}"
            )
    if report["load_average"]["before"] > 0.5 * report["cpus"]:
        lines.append(
            f"note: load average {report['load_average']['before']:.1f} on {report['cpus']} "
            "cores before the run: other processes move fit times by more than 5%; compare "
            "ratios from a quiet machine, or use --repeats"
        )
    for r in report["recipes"]:
        line = f"{r['recipe']}: Fitboard fit time / plain: {r['ratio']:.3f} (target <= 1.05)"
        if r["ratio"] > TARGET_RATIO:
            line += " -- ABOVE TARGET (reported, not failed: this is a benchmark)"
        lines.append(line)
    return "\n".join(lines)


def write_markdown(path: Path, report: dict[str, Any], command: str) -> None:
    banner = ""
    if report["smoke"]:
        banner = (
            f"> **SMOKE RUN, not the benchmark** ({report['smoke']}): these numbers only show "
            "that the script runs end to end; they say nothing about accuracy or overhead. "
            "`python bench/recipes.py` on the full data sets rewrites this section.\n\n"
        )
    epochs = [
        "| recipe | variant | epoch wall times (s; epoch 1 includes tracing) |",
        "|---|---|---|",
    ]
    for r in report["recipes"]:
        for name, key in (("plain Keras", "plain"), ("Fitboard", "fitboard")):
            times = ", ".join(f"{s:.1f}" for s in r[key]["epoch_s"])
            epochs.append(f"| `{r['recipe']}` | {name} | {times} |")
    section = (
        f"{SECTION_HEADING}\n\n"
        f"{banner}"
        f"Written by `{command}` on {report['date']}; {report['machine']}; Python "
        f"{report['python']}; load average {report['load_average']['before']:.1f} before, "
        f"{report['load_average']['after']:.1f} after; median of {report['repeats']} "
        f"repeat(s).\n\n"
        "Each recipe trains in fresh processes two ways: Fitboard's trainer (`python -m "
        "worker.trainer RUN_ID` on a claimed run in a temporary SQLite database, streaming every "
        "batch) and a plain Keras script (`worker.trainer.datasets.load`, "
        "`worker.trainer.build.build_model`, `model.fit(verbose=0)`). *Fit s* runs from the call "
        "to `fit()` to the end of the last epoch: for Fitboard from the trainer's `event="
        "fit_start` log line to the stored wall time of the last epoch's metrics; for plain "
        "Keras from before `fit()` to its last `on_epoch_end`. *Process s* is the whole "
        "process: start-up, data, model, fit, scoring (Fitboard also evaluates, saves the model "
        "and records the run). The fit ratio is Fitboard's fit time over plain's (target "
        "<= 1.05).\n\n"
        f"{table(report)}\n\n" + "\n".join(epochs) + f"\n\n```\n{verdict(report)}\n```\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else ""
    path.write_text(replace_section(old, SECTION_HEADING, section))


def replace_section(document: str, heading: str, section: str) -> str:
    """`document` with its top-level section `heading` replaced by `section` (or put first)."""
    # the section runs to the next "# " heading outside a code block
    lines = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        return section + ("\n" + document if document.strip() else "")
    end, fenced = len(lines), False
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("```"):
            fenced = not fenced
        elif not fenced and lines[i].startswith("# "):
            end = i
            break
    after = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + after if after else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RECIPES), help="train one recipe only")
    parser.add_argument("--mnist-epochs", type=int, help="default: the preset's (10)")
    parser.add_argument("--imdb-epochs", type=int, help="default: the preset's (3)")
    parser.add_argument("--train-limit", type=int, help="first N training samples (smoke runs)")
    parser.add_argument("--test-limit", type=int, help="first N test samples (smoke runs)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="fits per variant, median reported (default 1)"
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1024 training and test samples, 1 epoch (about 2 minutes)",
    )
    parser.add_argument("--plain-job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        for key in ("train_limit", "test_limit"):
            if getattr(args, key) is None:
                setattr(args, key, QUICK[key])
        for key in ("mnist_epochs", "imdb_epochs"):
            if getattr(args, key) is None:
                setattr(args, key, QUICK["epochs"])
    numbers = (args.mnist_epochs, args.imdb_epochs, args.train_limit, args.test_limit)
    if args.repeats < 1 or any(n is not None and n < 1 for n in numbers):
        parser.error("--repeats, epochs and limits must be at least 1")
    return args


def _smoke_label(args: argparse.Namespace) -> str:
    """What makes this a smoke run (slices of the data); empty for a full run."""
    if args.quick:
        return f"--quick: {args.train_limit:,} training and {args.test_limit:,} test samples"
    parts = [f"--train-limit {args.train_limit}"] if args.train_limit else []
    parts += [f"--test-limit {args.test_limit}"] if args.test_limit else []
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plain_job:
        return plain_job(args.plain_job)
    data_dir = Path(os.environ.get("FITBOARD_DATA_DIR") or REPO.parent / "shared" / "data")
    command = "python bench/recipes.py " + " ".join(sys.argv[1:] if argv is None else argv)
    recipes = [RECIPES[args.only]] if args.only else list(RECIPES.values())
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    # the database, the trainer's artifacts and the token cache go when the run ends
    with tempfile.TemporaryDirectory(prefix="fitboard-recipes-", ignore_cleanup_errors=True) as tmp:
        url = configure_environment(Path(tmp), data_dir.resolve())
        print(f"{os.cpu_count()} cores, {cpu_model()}; data {data_dir}; store {url}", flush=True)
        try:
            results = [
                run_recipe(args, recipe, Path(tmp), url, RUN_ID_BASE + 100 * i)
                for i, recipe in enumerate(recipes)
            ]
        except VariantFailed as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    versions = results[0]["versions"]
    report = {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} cores, {cpu_model()}, Keras {versions['keras']} "
        f"({versions['backend']}, TensorFlow {versions['tensorflow']})",
        "cpus": os.cpu_count() or 1,
        "python": platform.python_version(),
        "repeats": args.repeats,
        "smoke": _smoke_label(args),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "recipes": results,
    }
    write_markdown(args.output, report, command.strip())
    print(f"\n{table(report)}\n\n{verdict(report)}")
    print(f"\nreport written to {args.output} ({time.perf_counter() - started:.0f}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
