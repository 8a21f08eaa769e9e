"""The examples the user is shown: every `--help` epilog's and the README's shell lines."""

from __future__ import annotations

import re
import shlex

from backend.client.cli import build_parser
from tests.conftest import ROOT

README = ROOT / "README.md"
# a block that sends files of the reader's own (an upload's CSV, NPZ or zip, then a run on it)
# cannot run without them: left out (tests/api/test_uploads.py posts such files)
OWN_FILE = "-F file=@"


def help_examples() -> dict[str, list[str]]:
    """Each subcommand's examples, read from its --help as printed."""
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    found: dict[str, list[str]] = {}
    for name, sub in choices.items():
        text = sub.format_help()
        _, _, tail = text.partition("\nexamples:\n")
        found[name] = [line.strip() for line in tail.splitlines() if line.strip()]
    return found


def shell_commands(block: str) -> list[str]:
    """A code block's commands: continued lines and multi-line quotes joined, comments left."""
    commands: list[str] = []
    current = ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line + "\n"
        if line.endswith("\\"):
            continue
        try:
            shlex.split(current, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        commands.append(current.strip())
        current = ""
    assert not current, f"unterminated command: {current!r}"
    return commands


def readme_examples() -> list[str]:
    """Every `fitboard` and `curl` command in the README's bash blocks, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return [
        command
        for block in blocks
        if OWN_FILE not in block
        for command in shell_commands(block)
        if command.split()[0] in ("fitboard", "curl")
    ]


def words(command: str) -> list[str]:
    """The command's words, its trailing comment dropped."""
    return shlex.split(command, comments=True)
