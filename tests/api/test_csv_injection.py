"""CSV exports never hand a spreadsheet a formula: text cells that start like one are escaped."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from backend.exports.service import csv_text

FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_runs_csv_escapes_formula_cells(api: TestClient) -> None:
    ids = []
    for i, formula in enumerate(FORMULAS):
        r = api.post(
            "/api/v1/runs/external",
            json={"name": formula, "tags": [f"{formula[0]}cmd{i}"], "params": {"x": 1}},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = api.post(
        f"/api/v1/runs/{ids[0]}/points",
        json={"uid": "n", "points": [{"key": "loss", "step": 1, "value": -0.5}]},
    )
    assert r.status_code == 200, r.text
    rows = {int(row["id"]): row for row in _rows(api.get("/api/v1/runs.csv").text)}
    for run_id, formula in zip(ids, FORMULAS, strict=True):
        assert rows[run_id]["name"] == "'" + formula
        assert rows[run_id]["tags"].startswith("'") or rows[run_id]["tags"][:1] not in "=+-@"
    # a negative number is a number, not a formula
    assert rows[ids[0]]["metric:loss"] == "-0.5"


def test_metrics_csv_escapes_keys_that_start_like_a_formula(api: TestClient) -> None:
    run_id = api.post("/api/v1/runs/external", json={"name": "keys"}).json()["id"]
    points = [
        {"key": "-loss", "step": 1, "value": -1.0},
        {"key": "@acc", "step": 1, "value": 0.5},
        {"key": "+lr", "step": 1, "value": 0.1},
    ]
    r = api.post(f"/api/v1/runs/{run_id}/points", json={"uid": "k", "points": points})
    assert r.status_code == 200, r.text
    rows = _rows(api.get(f"/api/v1/runs/{run_id}/metrics.csv").text)
    assert sorted(row["key"] for row in rows) == ["'+lr", "'-loss", "'@acc"]
    assert {row["key"]: row["value"] for row in rows}["'-loss"] == "-1.0"


@pytest.mark.parametrize("text", ["=1", "+1", "-1", "@x", "\tx", "\rx"])
def test_every_formula_prefix_is_escaped(text: str) -> None:
    assert csv_text(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "a=b", "", -1.5, 3, None])
def test_other_cells_are_left_as_they_are(value: object) -> None:
    assert csv_text(value) == value
