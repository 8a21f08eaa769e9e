"""The CLI reads what its own --help shows: `fitboard runs --sort -created_at` (the value of
--sort starts with '-', which argparse alone takes for another option)."""

from __future__ import annotations

import pytest

from backend.client.cli import _join_dash_values, build_parser
from tests.conftest import ROOT
from tests.examples import help_examples, readme_examples, words


@pytest.mark.parametrize(
    ("argv", "sort"),
    [
        (["runs", "--sort", "-created_at"], "-created_at"),
        (["runs", "--sort=-metric:val_accuracy"], "-metric:val_accuracy"),
        (["runs", "--sort", "name", "--limit", "5"], "name"),
        (["runs", "--limit", "5", "--sort", "-param:fit.epochs", "--json"], "-param:fit.epochs"),
    ],
)
def test_sort_takes_a_descending_value_as_written(argv: list[str], sort: str) -> None:
    args = build_parser().parse_args(_join_dash_values(argv))
    assert args.sort == sort
    assert args.command == "runs"


def test_the_help_names_the_descending_form() -> None:
    runs_help = build_parser()._subparsers._group_actions[0].choices["runs"].format_help()  # type: ignore[union-attr]
    assert "-created_at" in runs_help
    # the example in the help parses as written
    build_parser().parse_args(_join_dash_values(["runs", "--sort", "-created_at"]))


def test_every_example_parses_and_names_files_that_exist() -> None:
    """The cheap half of tests/e2e/test_examples.py: each example is a valid command line."""
    examples = help_examples()
    assert set(examples) == {
        "submit",
        "sweep",
        "runs",
        "watch",
        "cancel",
        "resume",
        "fork",
        "download",
    }
    assert all(examples.values()), examples
    readme = [c for c in readme_examples() if c.startswith("fitboard ")]
    assert readme, "the README shows no fitboard command"
    for command in [c for lines in examples.values() for c in lines] + readme:
        argv = [w.replace("RUN_ID", "12") for w in words(command)][1:]
        args = build_parser().parse_args(_join_dash_values(argv))
        if args.command in ("submit", "sweep"):
            assert (ROOT / args.file).is_file(), command


@pytest.mark.parametrize(
    ("argv", "notify"),
    [
        (["submit", "f.yaml"], None),
        (
            ["submit", "f.yaml", "--notify", "failed,stalled"],
            {"on": ["failed", "stalled"], "webhook": True, "browser": True},
        ),
        (
            ["sweep", "f.yaml", "--notify"],
            {"on": ["ended", "failed", "stalled"], "webhook": True, "browser": True},
        ),
        (
            ["sweep", "f.yaml", "--notify", "--notify-via", "webhook"],
            {"on": ["ended", "failed", "stalled"], "webhook": True, "browser": False},
        ),
    ],
)
def test_notify_becomes_the_body_s_notify(argv: list[str], notify: dict | None) -> None:
    from backend.client.cli import _notify

    assert _notify(build_parser().parse_args(argv)) == notify


@pytest.mark.parametrize("value", ["done", "failed,nope", ","])
def test_a_wrong_notify_event_is_a_usage_error(value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["submit", "f.yaml", "--notify", value])
    assert exited.value.code == 2


def test_fork_set_reads_a_path_and_a_json_value() -> None:
    from backend.client.cli import parse_set

    assert parse_set("fit.epochs=8") == {"fit": {"epochs": 8}}
    assert parse_set("compile.optimizer.learning_rate=3e-4") == {
        "compile": {"optimizer": {"learning_rate": 0.0003}}
    }
    assert parse_set("fit.shuffle=false") == {"fit": {"shuffle": False}}
    assert parse_set("name=plain text") == {"name": "plain text"}
    args = build_parser().parse_args(
        ["fork", "12", "--name", "f", "--set", "fit.epochs=8", "--set", "fit.batch_size=16"]
    )
    assert args.from_epoch is None and len(args.set) == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fork", "12", "--name", "f", "--set", "no-equals"])
