"""The runs table's columns in headless Chromium: it fits the page at common widths, each person
chooses and orders columns (any final metric, any spec parameter) and keeps them across a
reload, a wide choice scrolls inside the table's box with the name in view, and any shown
column sorts.

The admin's columns stay the defaults (other browser tests read that table); the tests that
change columns sign in as a member of their own.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.support import expect, sign_in_cookies
from tests.browser.test_runs_page import (
    T0,
    expect_ids,
    open_runs,
    screenshot,
    stored_runs,
    submitted_then_cancelled,
    token,
    wait_query,
)
from tests.conftest import create_identity

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

WIDTHS = (1280, 1500, 1920)
FITS_JS = """() => {
  const wrap = document.querySelector('.table-wrap');
  const root = document.documentElement;
  return { table: wrap.scrollWidth, box: wrap.clientWidth,
           page: root.scrollWidth, viewport: root.clientWidth };
}"""


@pytest.fixture
def admin_defaults(api: httpx.Client) -> Any:
    """The admin's columns are the defaults before and after the test."""
    assert api.put("/auth/me/preferences", json={}).status_code == 200
    yield
    api.put("/auth/me/preferences", json={})


@pytest.fixture
def member(page: Page, base_url: str, database_url: str) -> httpx.Client:
    """The page signs in as a fresh member instead; their API client is returned."""
    username = f"cols-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(12)
    who = create_identity(database_url, username, "member", password=password)
    page.context.clear_cookies()
    page.context.add_cookies(sign_in_cookies(base_url, username, password))  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {who.token}"}
    return httpx.Client(base_url=base_url + "/api/v1", timeout=30, headers=headers)


def realistic_runs(api: httpx.Client, database_url: str, word: str, n: int = 4) -> list[int]:
    """Finished runs with long names, datasets and tags, a launcher and the four usual final
    metrics (and one of their own)."""
    launcher = api.get("/auth/me").json()["user"]["id"]
    rows = []
    for i in range(n):
        rows.append(
            {
                "name": f"{word} digits-mlp lr=3e-4 batch 128 dropout 0.25 warm restarts #{i}",
                "status": "succeeded",
                "dataset": f"{word}-uploaded-customer-churn-2024-cleaned",  # cut to fit
                "launched_by_id": launcher,
                "created_at": T0 + timedelta(minutes=i),
                "started_at": T0 + timedelta(minutes=i),
                "finished_at": T0 + timedelta(minutes=i, seconds=754),
                "tags": [f"{word}-baseline", "a-tag-long-enough-to-be-cut-in-its-chip"],
                "finals": {
                    "loss": 0.123456 + i,
                    "accuracy": 0.912345,
                    "val_loss": 0.234567,
                    "val_accuracy": 0.898765 - i / 100,
                    f"f1_{word}": 0.5 + i / 10 * (-1) ** i,
                },
            }
        )
    return stored_runs(database_url, rows)


def open_chooser(page: Page) -> None:
    if not page.locator("#columns-menu").evaluate("(menu) => menu.open"):
        page.click("#columns-menu summary")
    expect(page.locator("#shown-columns")).to_be_visible()


def header_keys(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "#runs-table thead th[data-column]", "(ths) => ths.map((th) => th.dataset.column)"
    )


def test_default_columns_fit_at_common_widths(
    page: Page, base_url: str, api: httpx.Client, database_url: str, admin_defaults: None
) -> None:
    word = token()
    realistic_runs(api, database_url, word)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        open_runs(page, base_url, f"?q={word}")
        expect(page.locator("#runs-body tr[data-run-id]")).to_have_count(4)
        sizes = page.evaluate(FITS_JS)
        assert sizes["table"] <= sizes["box"], (width, sizes)
        assert sizes["page"] <= sizes["viewport"], (width, sizes)
        # every default column is there, the last metric in view without scrolling
        last = page.locator("th[data-column='metric:val_accuracy']").bounding_box()
        assert last is not None and last["x"] + last["width"] <= width, (width, last)
        screenshot(page, f"runs-columns-{width}", full_page=False)


def test_a_chosen_metric_column_is_kept_per_user_reorders_and_sorts(
    page: Page, base_url: str, api: httpx.Client, database_url: str, member: httpx.Client
) -> None:
    word = token()
    ids = realistic_runs(api, database_url, word)
    key = f"metric:f1_{word}"
    open_runs(page, base_url, f"?q={word}")
    open_chooser(page)
    page.fill("#columns-filter", word)
    choice = page.locator(f"#columns-body input[data-column='{key}']")
    expect(choice).not_to_be_checked()
    choice.check()
    expect(page.locator(f"th[data-column='{key}']")).to_be_visible()
    assert header_keys(page)[-1] == key
    screenshot(page, "runs-columns-chooser", full_page=False)
    # the new column's values are in the rows: f1 = 0.5, 0.4, 0.7, 0.2 (i = 0..3)
    values_js = f"""() => [...document.querySelectorAll('#runs-body tr[data-run-id]')].map(
      (row) => row.cells[[...row.parentNode.parentNode.tHead.rows[0].cells]
        .findIndex((th) => th.dataset.column === '{key}')].textContent)"""
    page.wait_for_function(f"() => ({values_js})().every((text) => text !== '—')")

    # moved left past val_accuracy; a column taken away
    page.click(f"#shown-columns li[data-column='{key}'] button[title='Move left']")
    page.fill("#columns-filter", "")
    page.locator("#columns-body input[data-column='launcher']").uncheck()
    expected = header_keys(page)
    assert expected[-2:] == [key, "metric:val_accuracy"] and "launcher" not in expected
    # each change is saved as it is made; wait for the last one before reloading
    saved = member.get("/auth/me/preferences").json()["runs_columns"]
    for _ in range(50):
        if saved == expected:
            break
        page.wait_for_timeout(100)
        saved = member.get("/auth/me/preferences").json()["runs_columns"]
    assert saved == expected

    page.reload()
    expect(page.locator("#runs-table")).to_have_attribute("aria-busy", "false")
    assert header_keys(page) == expected
    page.wait_for_function(f"() => ({values_js})().every((text) => text !== '—')")
    # per user: the admin still has the defaults
    assert api.get("/auth/me/preferences").json()["runs_columns"] is None

    # sorting by the chosen metric (higher is better: descending first), then ascending
    page.click(f"th[data-column='{key}'] button")
    wait_query(page, q=word, sort=f"-{key}")
    expect_ids(page, [ids[2], ids[0], ids[1], ids[3]])
    expect(page.locator(f"th[data-column='{key}']")).to_have_attribute("aria-sort", "descending")
    page.click(f"th[data-column='{key}'] button")
    wait_query(page, q=word, sort=key)
    expect_ids(page, [ids[3], ids[1], ids[0], ids[2]])

    # back to the defaults
    open_chooser(page)
    page.click("#columns-reset")
    assert header_keys(page)[-1] == "metric:val_accuracy" and "launcher" in header_keys(page)


def test_a_spec_parameter_column_shows_values_and_sorts(
    page: Page, base_url: str, api: httpx.Client, member: httpx.Client
) -> None:
    word = token()
    sizes = {48: 0, 16: 0, 96: 0}
    for size in sizes:
        sizes[size] = submitted_then_cancelled(
            api, f"{word} bs{size}", overrides={"fit": {"batch_size": size}}
        )
    open_runs(page, base_url, f"?q={word}")
    open_chooser(page)
    page.fill("#columns-filter", "fit.batch_size")
    page.locator("#columns-body input[data-column='param:fit.batch_size']").check()
    th = page.locator("th[data-column='param:fit.batch_size']")
    expect(th).to_contain_text("fit.batch_size")
    page.click("body")  # a click outside closes the menu
    expect(page.locator("#shown-columns")).to_be_hidden()

    th.locator("button").click()
    wait_query(page, q=word, sort="param:fit.batch_size")
    expect_ids(page, [sizes[16], sizes[48], sizes[96]])
    cells = page.eval_on_selector_all(
        "#runs-body tr[data-run-id] td:last-child", "(tds) => tds.map((td) => td.textContent)"
    )
    assert cells == ["16", "48", "96"]


def test_many_columns_scroll_inside_the_box_with_the_name_in_view(
    page: Page, base_url: str, api: httpx.Client, database_url: str, member: httpx.Client
) -> None:
    word = token()
    realistic_runs(api, database_url, word, n=2)
    params = api.get("/runs/columns").json()["params"][:30]
    many = [
        "name",
        "status",
        "preset",
        "dataset",
        "tags",
        "launcher",
        "started",
        "duration",
        "metric:loss",
        "metric:accuracy",
        "metric:val_loss",
        "metric:val_accuracy",
        *[f"param:{p}" for p in params],
    ]
    saved = member.put("/auth/me/preferences", json={"runs_columns": many})
    assert saved.status_code == 200, saved.text
    page.set_viewport_size({"width": 1280, "height": 900})
    open_runs(page, base_url, f"?q={word}")
    expect(page.locator("#runs-body tr[data-run-id]")).to_have_count(2)
    assert header_keys(page) == many
    sizes = page.evaluate(FITS_JS)
    assert sizes["table"] > sizes["box"], sizes  # it scrolls, in its own box
    assert sizes["page"] <= sizes["viewport"], sizes  # the page does not

    page.eval_on_selector(".table-wrap", "(wrap) => { wrap.scrollLeft = wrap.scrollWidth; }")
    page.wait_for_function(
        "() => { const w = document.querySelector('.table-wrap');"
        " return w.scrollLeft > 0 && w.scrollLeft + w.clientWidth >= w.scrollWidth - 1; }"
    )
    wrap = page.locator(".table-wrap").bounding_box()
    name = page.locator("#runs-body tr[data-run-id] td.name-cell").first
    box = name.bounding_box()
    assert wrap is not None and box is not None
    assert wrap["x"] <= box["x"] and box["x"] + box["width"] <= wrap["x"] + wrap["width"], (
        wrap,
        box,
    )
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1280
    # nothing scrolled over it: the name cell is what sits at its own middle
    on_top = name.evaluate(
        "(td) => { const r = td.getBoundingClientRect();"
        " const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);"
        " return td.contains(hit); }"
    )
    assert on_top
    expect(name.locator("a")).to_contain_text(word)
    # and the last column is in view now
    last = page.locator(f"th[data-column='param:{params[-1]}']").bounding_box()
    assert last is not None and last["x"] + last["width"] <= wrap["x"] + wrap["width"] + 1
    screenshot(page, "runs-columns-many-scrolled", full_page=False)
