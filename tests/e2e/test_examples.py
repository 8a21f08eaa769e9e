"""Every example in every `fitboard ... --help` and in the README runs as written against a
live stack (API + real worker) and exits 0.

RUN_ID stands for a run's id: the run the example before it made (`fitboard submit --wait`,
the README's curl POST); `fitboard cancel RUN_ID` gets a run that is still queued. What an
example starts and nobody waits for (a sweep, a run queued without --wait) is cancelled at
once, so the worker stays free for the next one. The curl lines go through
`curl -H "Authorization: Bearer $FITBOARD_TOKEN"`, as the README's alias says, with --fail so
an HTTP error is a non-zero exit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.client import Fitboard
from tests.conftest import ROOT, LiveStack
from tests.examples import help_examples, readme_examples, words

pytestmark = pytest.mark.e2e

README_URLS = ("http://127.0.0.1:8000", "localhost:8000")
CURL_AS_THE_README_SAYS = (
    'curl() { command curl --fail --show-error -H "Authorization: Bearer $FITBOARD_TOKEN" "$@"; }\n'
)


def _all_examples() -> list[str]:
    """README's lines, then the --help lines it does not already show (comments aside)."""
    ordered = readme_examples() + [c for lines in help_examples().values() for c in lines]
    seen: set[tuple[str, ...]] = set()
    unique = []
    for command in ordered:
        key = tuple(words(command))
        if key not in seen:
            seen.add(key)
            unique.append(command)
    return unique


class Examples:
    """Runs example lines in a scratch folder holding examples/, as a user's shell would."""

    def __init__(self, stack: LiveStack, folder: Path) -> None:
        self.stack = stack
        self.folder = folder
        shutil.copytree(ROOT / "examples", folder / "examples")
        self.env = {
            **os.environ,
            "FITBOARD_URL": stack.url,
            "FITBOARD_TOKEN": stack.token,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
        }
        self.fb = Fitboard(stack.url, stack.token)
        self.run_id: int | None = None  # the latest run an example made and saw to its end

    def prepare(self, command: str) -> str:
        for url in README_URLS:
            command = command.replace(url, self.stack.url)
        if "RUN_ID" not in command:
            return command
        if words(command)[:2] == ["fitboard", "cancel"]:
            queued = self.fb.submit_run(
                {"name": "example to cancel", "preset": "digits-mlp"}, name="example to cancel"
            )
            return command.replace("RUN_ID", str(queued["id"]))
        assert self.run_id is not None, f"no run made before {command!r}"
        return command.replace("RUN_ID", str(self.run_id))

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        if not command.startswith("fitboard "):  # the CLI needs no alias; curl does
            command = CURL_AS_THE_README_SAYS + command
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def follow_up(self, command: str, stdout: str) -> None:
        """Keep the run an example made for the next RUN_ID; cancel what nobody waits for."""
        argv = words(command)
        if argv[:2] == ["fitboard", "submit"]:
            run_id = int(stdout.split()[1])  # "run 12 'name' queued: URL"
            if "--wait" in argv:
                self.run_id = run_id
            else:
                self.fb.cancel(run_id)
        elif argv[:2] == ["fitboard", "fork"]:
            self.fb.cancel(int(stdout.split()[1]))  # "run 13 'name' queued (forked ...)"
        elif argv[:2] == ["fitboard", "sweep"]:
            self.fb.cancel_sweep(int(stdout.split()[1]))  # "sweep 7 'name' running"
        elif argv[0] == "curl" and "POST" in argv:
            made = json.loads(stdout)
            if re.search(r"/api/v1/runs$", argv[argv.index("POST") + 1]):
                self.run_id = int(made["id"])  # the README follows this run with curl
            elif argv[argv.index("POST") + 1].endswith("/api/v1/sweeps"):
                self.fb.cancel_sweep(int(made["id"]))


def test_every_example_runs_as_written(live_stack: LiveStack, tmp_path: Path) -> None:
    examples = _all_examples()
    assert any(c.startswith("curl ") for c in examples)
    assert {words(c)[1] for c in examples if c.startswith("fitboard ")} == {
        "submit",
        "sweep",
        "runs",
        "watch",
        "cancel",
        "resume",
        "fork",
        "download",
    }
    shell = Examples(live_stack, tmp_path)
    failed = []
    for example in examples:
        command = shell.prepare(example)
        done = shell.run(command)
        if done.returncode != 0:
            failed.append(f"{example}\n  -> exit {done.returncode}: {done.stderr.strip()[-500:]}")
            continue
        shell.follow_up(command, done.stdout)
    shell.fb.close()
    assert not failed, "\n".join(failed)
    # what the downloads wrote, where the examples said
    assert (tmp_path / "out" / "model.keras").is_file()
    assert (tmp_path / "model.keras").is_file()
