"""The Workers & queue page in headless Chromium: a host's GPUs as tiles (free, or busy with a
run, with utilisation and memory used of total), the pool it declares, and the queue with its
reasons, priority buttons and cancel."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.browser.support import Page, expect, screenshot

pytestmark = pytest.mark.browser


def test_workers_page_shows_gpus_and_steers_the_queue(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    # once the stack's worker reported (and said which queue it takes), runs wait in order
    deadline = time.monotonic() + 60
    while not any(w["online"] and w["queue"] for w in api.get("/workers").json()["items"]):
        assert time.monotonic() < deadline, "the stack's worker never reported"
        time.sleep(0.5)
    name = f"waits for three GPUs {uuid.uuid4().hex[:6]}"
    resources = {"gpus": 3, "gpu_type": "A100"}
    body = {"name": name, "preset": "digits-mlp", "overrides": {"resources": resources}}
    created = api.post("/runs", json=body)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    # a fake GPU host, reported with a worker token (no queue: the dispatcher leaves it out)
    token = api.post("/worker-tokens", json={"name": "browser fake GPU"}).json()["token"]
    host = f"fake-gpu-{uuid.uuid4().hex[:6]}@browser"
    report = {
        "host": "browser",
        "version": "0.0.test",
        "resources": {
            "cpus": 8,
            "ram_mb": 32_000,
            "concurrency": 2,
            "pool": "research",
            "gpus": [
                {
                    "index": 0,
                    "name": "Fake A100",
                    "memory_mb": 81_920,
                    "util_pct": 87,
                    "memory_used_mb": 4096,
                },
                {"index": 1, "name": "Fake A100", "memory_mb": 81_920},
            ],
        },
        "running": [{"run_id": run_id, "attempt": 1, "gpus": [0]}],
    }
    reported = httpx.put(
        f"{base_url}/api/v1/worker/hosts/{host}",
        json=report,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reported.status_code == 200, reported.text

    page.goto(f"{base_url}/workers")
    tile = page.locator(f'.worker-tile[data-worker="{host}"]')
    expect(tile.locator('.gpu-tile[data-gpu="0"]')).to_contain_text("busy")
    expect(tile.locator('.gpu-tile[data-gpu="0"] a')).to_have_attribute("href", f"/runs/{run_id}")
    expect(tile.locator('.gpu-tile[data-gpu="0"]')).to_contain_text("87% util")
    expect(tile.locator('.gpu-tile[data-gpu="0"]')).to_contain_text("4.0 GB / 80.0 GB")
    expect(tile.locator('.gpu-tile[data-gpu="1"] .gpu-usage')).to_have_text("80.0 GB")
    expect(tile).to_contain_text("pool research")
    expect(tile.locator('.gpu-tile[data-gpu="1"]')).to_contain_text("free")
    expect(tile).to_contain_text("8 CPUs")
    row = page.locator(f'#queue-body tr[data-run-id="{run_id}"]')  # the queue has loaded
    expect(row).to_contain_text("offers 3 GPUs of type A100")
    expect(row.locator(".queue-gpus")).to_have_text("3 \u00d7 A100")
    expect(row.locator(".priority")).to_have_text("normal")
    screenshot(page, "workers-queue")
    row.get_by_role("button", name=f"Raise priority: {name}").click()
    expect(row.locator(".priority")).to_have_text("high")
    assert api.get(f"/runs/{run_id}").json()["priority"] == "high"
    expect(row.get_by_role("button", name=f"Raise priority: {name}")).to_be_disabled()
    row.get_by_role("button", name=f"Lower priority: {name}").click()
    expect(row.locator(".priority")).to_have_text("normal")
    row.get_by_role("button", name=f"Move to top: {name}").click()
    expect(row.locator(".priority")).to_have_text("normal · top")
    # (the order that follows from it is checked in tests/api/test_queue.py, on a queue of
    # its own: here earlier tests' queued runs share the database)
    moved = next(i for i in api.get("/queue").json()["items"] if i["run_id"] == run_id)
    assert moved["moved_to_top"] is True
    row.get_by_role("button", name=f"Cancel run: {name}").click()
    expect(row).to_have_count(0)
    assert api.get(f"/runs/{run_id}").json()["status"] == "cancelled"
