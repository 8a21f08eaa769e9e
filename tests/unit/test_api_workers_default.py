"""FITBOARD_API_WORKERS follows the machine: half its cores, 1 to 8; a setting wins."""

from __future__ import annotations

import pytest

from backend.config import Settings, default_api_workers


@pytest.mark.parametrize(
    ("cores", "processes"), [(None, 1), (1, 1), (2, 1), (4, 2), (16, 8), (96, 8)]
)
def test_half_the_cores_between_one_and_eight(cores: int | None, processes: int) -> None:
    assert default_api_workers(cores) == processes


def test_the_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITBOARD_API_WORKERS", "3")
    assert Settings().api_workers == 3
    monkeypatch.setenv("FITBOARD_API_WORKERS", "0")
    with pytest.raises(ValueError, match="api_workers"):
        Settings()
