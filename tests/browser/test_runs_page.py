"""The runs page in headless Chromium: search, filters, sort, paging, the URL, and actions.

Runs on the same stack and fixtures as test_pages.py (one Chromium for every browser test).
Runs come from the API (submitted, then cancelled: they need not train) or, where many or
specific final metrics are needed, straight from the stack's database. Each test names its
runs with a fresh token and searches for it, so other tests' runs never show up in the rows
compared.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.browser.support import expect, sync_api
from tests.conftest import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
XSS_NAME = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)

IDS_JS = """() => [...document.querySelectorAll('#runs-body tr[data-run-id]')]
  .map((row) => Number(row.dataset.runId))"""
SETTLED_IDS_JS = f"""(expected) => document.getElementById('runs-table')
  .getAttribute('aria-busy') === 'false'
  && JSON.stringify(({IDS_JS})()) === JSON.stringify(expected)"""


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


# ---- data ----


def token() -> str:
    return f"rp{uuid.uuid4().hex[:8]}"


def submitted_then_cancelled(api: httpx.Client, name: str, **body: Any) -> int:
    """A run from the API that is cancelled at once: it costs the worker nothing."""
    response = api.post("/runs", json={"name": name, "preset": "digits-mlp", **body})
    assert response.status_code == 201, response.text
    run_id = int(response.json()["id"])
    api.post(f"/runs/{run_id}/cancel")
    deadline = time.monotonic() + 120
    while api.get(f"/runs/{run_id}").json()["status"] not in {"cancelled", "failed", "succeeded"}:
        assert time.monotonic() < deadline, f"run {run_id} did not stop"
        time.sleep(0.3)
    return run_id


def stored_runs(database_url: str, rows: list[dict[str, Any]]) -> list[int]:
    """Runs written straight to the database (finished, or queued but never sent to a worker)."""
    from backend.db.session import session_scope
    from backend.metrics import service as metrics
    from backend.runs import service as runs
    from backend.runs.models import Run
    from backend.spec import resolve_spec

    spec = resolve_spec(spec=None, preset="digits-mlp", overrides=None).model_dump(mode="json")
    ids = []
    with session_scope(database_url) as session:
        for row in rows:
            finals = row.pop("finals", {})
            tags = row.pop("tags", [])
            row.setdefault("preset", "digits-mlp")
            row.setdefault("dataset", "digits")
            run = Run(spec=spec, **row)
            if run.status == "queued":
                run.dispatched_at = datetime.now(UTC)  # so the API's sweeper leaves it alone
            session.add(run)
            session.flush()
            if tags:
                runs.edit(session, run_id=run.id, tags=tags)
            points = [
                metrics.Point(key=k, step=1, value=v, wall_time=0.0) for k, v in finals.items()
            ]
            metrics.record(session, run_id=run.id, points=points, uid="finals")
            ids.append(run.id)
    return ids


# ---- page helpers ----


def expect_ids(page: Page, expected: list[int]) -> None:
    """Wait until the table has settled on exactly these rows, in this order."""
    try:
        page.wait_for_function(SETTLED_IDS_JS, arg=expected, timeout=20_000)
    except sync_api.TimeoutError:
        raise AssertionError(f"rows {page.evaluate(IDS_JS)}, expected {expected}") from None


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def wait_query(page: Page, **expected: str) -> None:
    """Wait until the page's URL holds exactly these query parameters."""
    wanted = {k: [v] for k, v in expected.items()}
    deadline = time.monotonic() + 20
    while query_of(page) != wanted:
        assert time.monotonic() < deadline, f"URL {page.url}, expected {wanted}"
        page.wait_for_timeout(50)


def open_runs(page: Page, base_url: str, query: str = "") -> None:
    page.goto(f"{base_url}/{query}")
    expect(page.locator("#runs-table")).to_have_attribute("aria-busy", "false")


# ---- tests ----


def test_search_filter_sort_and_page_drive_the_rows_and_the_url(
    page: Page, base_url: str, api: httpx.Client, database_url: str
) -> None:
    word = token()
    alpha = submitted_then_cancelled(api, f"{word} alpha")
    bravo = submitted_then_cancelled(api, f"{word} Bravo")
    charlie = submitted_then_cancelled(
        api, f"{word} charlie", overrides={"fit": {"batch_size": 64}}
    )
    assert api.patch(f"/runs/{bravo}", json={"tags": [f"{word}-best"]}).status_code == 200
    assert api.patch(f"/runs/{charlie}", json={"notes": "warmup helped"}).status_code == 200
    finals = {alpha: 0.81, bravo: 0.93, charlie: 0.88}
    from backend.db.session import session_scope
    from backend.metrics import service as metrics

    with session_scope(database_url) as session:
        for run_id, value in finals.items():
            point = metrics.Point(key="val_accuracy", step=1, value=value, wall_time=0.0)
            metrics.record(session, run_id=run_id, points=[point], uid="final")

    open_runs(page, base_url, f"?q={word}")
    expect_ids(page, [charlie, bravo, alpha])
    expect(page.locator("#runs-search")).to_have_value(word)
    expect(page.locator("#runs-count")).to_have_text("1\N{EN DASH}3 of 3")

    # a search typed in the box: notes and tags are searched too, case-insensitively
    page.fill("#runs-search", f"{word} WARMUP")
    wait_query(page, q=f"{word} WARMUP")
    expect_ids(page, [charlie])
    page.fill("#runs-search", word)
    wait_query(page, q=word)
    expect_ids(page, [charlie, bravo, alpha])

    # a tag filter (from the list of tags in use) and a status filter
    page.select_option("#tag-filter", f"{word}-best")
    wait_query(page, q=word, tag=f"{word}-best")
    expect_ids(page, [bravo])
    page.select_option("#tag-filter", "")
    page.select_option("#status-filter", "cancelled")
    wait_query(page, q=word, status="cancelled")
    expect_ids(page, [charlie, bravo, alpha])
    page.select_option("#status-filter", "running")
    wait_query(page, q=word, status="running")
    expect_ids(page, [])
    expect(page.locator("#runs-empty")).to_contain_text("No runs match")
    page.click("#empty-clear-filters")
    wait_query(page)
    page.goto(f"{base_url}/?q={word}")

    # sorting by a column header, both ways, and by a final metric
    page.click("th[data-sort=name] button")
    wait_query(page, q=word, sort="name")
    expect_ids(page, [alpha, bravo, charlie])
    expect(page.locator("th[data-sort=name]")).to_have_attribute("aria-sort", "ascending")
    page.click("th[data-sort=name] button")
    wait_query(page, q=word, sort="-name")
    expect_ids(page, [charlie, bravo, alpha])
    page.click("th[data-sort='metric:val_accuracy'] button")
    wait_query(page, q=word, sort="-metric:val_accuracy")
    expect_ids(page, [bravo, charlie, alpha])
    row = page.locator(f'#runs-body tr[data-run-id="{bravo}"]')
    expect(row.locator("td").last).to_have_text("0.9300")
    expect(row.locator(".chip")).to_have_text(f"{word}-best")

    # the URL is the view: a reload, and Back/Forward, restore it
    page.reload()
    expect_ids(page, [bravo, charlie, alpha])
    expect(page.locator("th[data-sort='metric:val_accuracy']")).to_have_attribute(
        "aria-sort", "descending"
    )
    page.go_back()
    wait_query(page, q=word, sort="-name")
    expect_ids(page, [charlie, bravo, alpha])
    page.go_back()
    wait_query(page, q=word, sort="name")
    expect_ids(page, [alpha, bravo, charlie])
    page.go_forward()
    expect_ids(page, [charlie, bravo, alpha])
    screenshot(page, "runs-page-sorted")


def test_pages_of_fifty_with_offset_in_the_url(
    page: Page, base_url: str, database_url: str
) -> None:
    word = token()
    ids = stored_runs(
        database_url,
        [
            {
                "name": f"{word} {['mlp', 'wide mlp', 'dropout 0.3'][i % 3]} #{i:02d}",
                "status": ["succeeded", "succeeded", "failed", "succeeded", "cancelled"][i % 5],
                "preset": "mnist-mlp" if i % 4 == 0 else "digits-mlp",
                "dataset": "mnist" if i % 4 == 0 else "digits",
                "created_at": T0 + timedelta(minutes=i),
                "started_at": T0 + timedelta(minutes=i),
                "finished_at": T0 + timedelta(minutes=i, seconds=40 + 3 * i),
                "tags": [["baseline"], ["lr-sweep", "adam"], [], ["paging"]][i % 4],
                "finals": {
                    "loss": 0.9 / (i + 2),
                    "accuracy": 0.8 + i / 400,
                    "val_loss": 1.1 / (i + 2),
                    "val_accuracy": 0.78 + i / 420,
                },
            }
            for i in range(55)
        ],
    )
    newest_first = ids[::-1]
    open_runs(page, base_url, f"?q={word}")
    expect_ids(page, newest_first[:50])
    expect(page.locator("#runs-count")).to_have_text("1\N{EN DASH}50 of 55")
    expect(page.locator("#prev-page")).to_be_disabled()
    screenshot(page, "runs-page", full_page=False)

    page.click("#next-page")
    wait_query(page, q=word, offset="50")
    expect_ids(page, newest_first[50:])
    expect(page.locator("#runs-count")).to_have_text("51\N{EN DASH}55 of 55")
    expect(page.locator("#next-page")).to_be_disabled()
    page.reload()
    expect_ids(page, newest_first[50:])

    # a new sort starts again at the first page
    page.click("th[data-sort=duration] button")
    wait_query(page, q=word, sort="-duration")
    expect_ids(page, newest_first[:50])
    page.go_back()
    wait_query(page, q=word, offset="50")
    expect_ids(page, newest_first[50:])


def test_delete_asks_first_then_removes_the_row(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    word = token()
    keep = submitted_then_cancelled(api, f"{word} keep")
    doomed = submitted_then_cancelled(api, f"{word} doomed")
    open_runs(page, base_url, f"?q={word}")
    expect_ids(page, [doomed, keep])

    expect(page.locator("#delete-selected")).to_be_disabled()
    page.check(f'#runs-body tr[data-run-id="{doomed}"] input.select-run')
    expect(page.locator("#selection-count")).to_have_text("1 selected")
    page.click("#delete-selected")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-list")).to_have_text(f"{word} doomed")
    page.click("#confirm-cancel")  # changed my mind
    expect(dialog).to_be_hidden()
    expect_ids(page, [doomed, keep])
    assert api.get(f"/runs/{doomed}").status_code == 200

    page.click("#delete-selected")
    page.click("#confirm-delete")
    expect_ids(page, [keep])
    expect(page.locator("#runs-notice")).to_have_text("Deleted 1 run.")
    assert api.get(f"/runs/{doomed}").status_code == 404
    expect(page.locator("#runs-count")).to_have_text("1\N{EN DASH}1 of 1")


def test_cancel_tag_and_compare_selected_runs(
    page: Page, base_url: str, api: httpx.Client, database_url: str
) -> None:
    word = token()
    queued, done = stored_runs(
        database_url,
        [
            {"name": f"{word} waiting", "status": "queued", "created_at": T0},
            {"name": f"{word} done", "status": "succeeded", "created_at": T0 - timedelta(days=1)},
        ],
    )
    open_runs(page, base_url, f"?q={word}")
    expect_ids(page, [queued, done])
    row = page.locator(f'#runs-body tr[data-run-id="{queued}"]')
    expect(row).to_have_attribute("data-status", "queued")

    page.check(f'#runs-body tr[data-run-id="{queued}"] input.select-run')
    expect(page.locator("#delete-selected")).to_be_disabled()  # queued: cancel it first
    page.click("#cancel-selected")
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(row.locator(".badge")).to_have_text("cancelled")

    page.check("#select-page")
    expect(page.locator("#selection-count")).to_have_text("2 selected")
    page.click("#tag-selected")
    page.fill("#tag-input", f"  {word}-tagged ")
    page.press("#tag-input", "Enter")
    expect(page.locator(f"#runs-body .chip:text-is('{word}-tagged')")).to_have_count(2)
    assert api.get(f"/runs/{done}").json()["tags"] == [f"{word}-tagged"]

    # a chip filters by its tag
    page.locator(f'#runs-body tr[data-run-id="{done}"] .chip').click()
    wait_query(page, q=word, tag=f"{word}-tagged")
    expect(page.locator("#tag-filter")).to_have_value(f"{word}-tagged")
    expect(page.locator("#selection-count")).not_to_have_text("2 selected")  # a new view
    expect_ids(page, [queued, done])

    page.check("#select-page")
    page.click("#compare-selected")
    page.wait_for_url(re.compile(rf"/compare\?runs={queued},{done}$"))


def test_names_and_tags_are_text_never_markup(page: Page, base_url: str, api: httpx.Client) -> None:
    word = token()
    run_id = submitted_then_cancelled(api, f"{word} {XSS_NAME}")
    tag = "<b>bold</b>"
    assert api.patch(f"/runs/{run_id}", json={"tags": [tag]}).status_code == 200

    open_runs(page, base_url, "?" + "&".join([f"q={word}", "tag=%3Cb%3Ebold%3C%2Fb%3E"]))
    expect_ids(page, [run_id])
    link = page.locator(f'#runs-body tr[data-run-id="{run_id}"] td.name-cell a')
    expect(link).to_have_text(f"{word} {XSS_NAME}")
    expect(page.locator("#runs-body .chip")).to_have_text(tag)
    expect(page.locator("#tag-filter")).to_have_value(tag)
    assert page.locator("#runs-body script, #runs-body img, #runs-body b").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.title() == "Runs · Fitboard"


def test_a_bad_link_says_what_is_wrong(page: Page, base_url: str) -> None:
    open_runs(page, base_url, "?sort=bogus")
    expect(page.locator("#runs-error")).to_contain_text("sort: unknown sort key 'bogus'")
    open_runs(page, base_url, "?from=2025-01-10&to=2025-01-09")
    expect(page.locator("#created-from")).to_have_value("2025-01-10")
    expect(page.locator("#runs-empty")).to_be_visible()
