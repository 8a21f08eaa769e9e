"""The README's settings table names every setting the code reads."""

from __future__ import annotations

from backend.config import Settings
from tests.conftest import ROOT


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env = alias.choices[0] if alias is not None else f"FITBOARD_{name.upper()}"  # type: ignore[union-attr]
        assert f"| `{env}` |" in readme, f"{env} missing from the README's settings table"


def test_every_make_target_in_the_readme_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "api", "worker", "migrate", "lint", "bench", "help"):
        assert f"\n{target}:" in makefile
