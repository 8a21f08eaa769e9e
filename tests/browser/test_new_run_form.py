"""The New run form generated from the spec's JSON Schema, its JSON and YAML views, and Clone.

Runs on the same stack and fixtures as test_pages.py (FITBOARD_BASE_URL, or the live stack).
"""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from tests.browser.support import Locator, Page, expect, screenshot, wait_status

pytestmark = pytest.mark.browser

LAYERS = '[data-path="spec.model.layers"]'
ITEMS = f"{LAYERS} > ol > li.sf-item"
# the page's height for digits-mlp at 1280x900 before the form folded its sections: 5,558 px,
# with epochs 3,958 px down
UNFOLDED_HEIGHT = 5558
TEXT_OPTIONS = ("num_words", "maxlen", "padding", "truncating")
FOLDER_OPTIONS = ("path", "image_size", "color_mode")


def open_form(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/new?preset=digits-mlp")
    expect(page.locator('input[name="spec.fit.epochs"]')).to_have_value("20")
    expect(page.locator("#spec-editor")).not_to_have_value("")


def section(page: Page, key: str) -> Locator:
    return page.locator(f'details.sf-section[data-section="{key}"]')


def open_section(page: Page, key: str) -> None:
    """Unfold a section of the form (all but the common fields start folded)."""
    if section(page, key).get_attribute("open") is None:
        section(page, key).locator("> summary").click()
    expect(section(page, key)).to_have_attribute("open", "")


def dataset_field(page: Page, name: str) -> Locator:
    return page.locator(f'[data-path="spec.dataset.{name}"]')


def editor_spec(page: Page) -> dict:
    return dict(json.loads(page.locator("#spec-editor").input_value()))


def layer_types(page: Page) -> list[str]:
    return [layer["type"] for layer in editor_spec(page)["model"]["layers"]]


def test_form_json_and_yaml_stay_in_sync_and_launch(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    open_form(page, base_url)
    presets = {p["name"]: p for p in api.get("/presets").json()}
    preset_layers = [layer["type"] for layer in presets["digits-mlp"]["spec"]["model"]["layers"]]
    assert layer_types(page) == preset_layers

    # A number typed in the form shows in the JSON view ...
    page.fill('input[name="spec.fit.epochs"]', "2")
    assert editor_spec(page)["fit"]["epochs"] == 2
    expect(page.locator('input[name="spec.fit.epochs"]')).to_have_attribute("min", "1")
    # ... and in the YAML view
    page.get_by_role("tab", name="YAML").click()
    expect(page.locator("#spec-yaml")).to_be_visible()
    expect(page.locator("#spec-editor")).to_be_hidden()
    assert re.search(r"^  epochs: 2$", page.locator("#spec-yaml").input_value(), re.M)

    # A YAML edit reaches the form and the JSON
    yaml_text = page.locator("#spec-yaml").input_value()
    assert "  batch_size: 32\n" in yaml_text
    page.fill("#spec-yaml", yaml_text.replace("  batch_size: 32\n", "  batch_size: 64\n"))
    expect(page.locator('input[name="spec.fit.batch_size"]')).to_have_value("64")
    # YAML that does not parse holds the form (and says why) until it is fixed
    page.fill("#spec-yaml", yaml_text.replace("  batch_size: 32\n", "  batch_size: [64\n"))
    expect(page.locator("#text-error")).to_contain_text("YAML not valid")
    expect(page.locator("#spec-form")).to_have_attribute("inert", "")
    page.fill("#spec-yaml", yaml_text.replace("  batch_size: 32\n", "  batch_size: 64\n"))
    expect(page.locator("#text-error")).to_be_hidden()
    expect(page.locator("#sync-state")).to_contain_text("in sync")
    page.get_by_role("tab", name="JSON").click()
    assert editor_spec(page)["fit"]["batch_size"] == 64
    assert editor_spec(page)["fit"]["epochs"] == 2

    # An enum is a select; a boolean a checkbox
    expect(page.locator('select[name="spec.compile.optimizer.name"]')).to_be_visible()
    open_section(page, "fit")
    page.locator('input[type="checkbox"][name="spec.fit.shuffle"]').uncheck()
    assert editor_spec(page)["fit"]["shuffle"] is False

    # Layers: add one (Dense 64 relu), give it 32 units, move it above the output layer
    open_section(page, "model")
    items = page.locator(ITEMS)
    expect(items).to_have_count(len(preset_layers))
    page.locator(LAYERS).locator('button[data-action="add"]').click()
    expect(items).to_have_count(len(preset_layers) + 1)
    new = items.nth(len(preset_layers))
    assert editor_spec(page)["model"]["layers"][-1] == {
        "type": "Dense",
        "units": 64,
        "activation": "relu",
    }
    new.get_by_label("Value of units").fill("32")
    assert editor_spec(page)["model"]["layers"][-1]["units"] == 32
    new.locator('button[data-action="up"]').click()
    layers = editor_spec(page)["model"]["layers"]
    assert layers[-2] == {"type": "Dense", "units": 32, "activation": "relu"}
    assert layers[-1]["activation"] == "softmax"
    expect(items.nth(len(preset_layers) - 1).locator(".sf-item-summary")).to_have_text(
        "Dense(32, relu)"
    )

    # ... and remove the first Dropout; then move Flatten down and back up
    dropout = preset_layers.index("Dropout")
    items.nth(dropout).locator('button[data-action="remove"]').click()
    expect(items).to_have_count(len(preset_layers))
    expected = [*preset_layers[:dropout], *preset_layers[dropout + 1 : -1], "Dense"]
    expected.append(preset_layers[-1])
    assert layer_types(page) == expected
    items.nth(0).locator('button[data-action="down"]').click()
    assert layer_types(page)[:2] == [expected[1], expected[0]]
    items.nth(1).locator('button[data-action="up"]').click()
    assert layer_types(page) == expected

    # A layer argument added as a key/value row (JSON values; bare words are strings)
    dense = expected.index("Dense")
    item = items.nth(dense)
    item.locator('button[data-action="add-entry"]').click()
    item.get_by_label("Argument name").last.fill("use_bias")
    item.get_by_label("Argument value").last.fill("true")
    assert editor_spec(page)["model"]["layers"][dense]["use_bias"] is True

    # A discriminated union: a callback picked by its type
    callbacks = page.locator('[data-path="spec.callbacks"]')
    open_section(page, "callbacks")
    callbacks.locator('button[data-action="add"]').click()
    assert editor_spec(page)["callbacks"][0]["type"] == "EarlyStopping"
    callbacks.get_by_label("Callback type").select_option("ReduceLROnPlateau")
    callback = editor_spec(page)["callbacks"][0]
    assert callback["type"] == "ReduceLROnPlateau" and "factor" in callback
    callbacks.locator('button[data-action="remove"]').click()
    assert editor_spec(page)["callbacks"] == []

    name = f"form run {uuid.uuid4().hex[:6]}"
    page.fill("#run-name", name)
    final_spec = editor_spec(page)
    screenshot(page, "new-run-form")
    page.click("#submit-run")

    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#run-name")).to_have_text(name)
    run = api.get(f"/runs/{run_id}").json()
    assert run["preset"] == "digits-mlp"
    assert run["spec"]["fit"] == final_spec["fit"]
    assert run["spec"]["model"]["layers"] == final_spec["model"]["layers"]
    wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, timeout_s=240)


def test_a_422_shows_next_to_the_form_field(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    total_before = api.get("/runs", params={"limit": 1}).json()["total"]
    open_form(page, base_url)
    page.fill("#run-name", "zero epochs in the form")
    epochs = page.locator('input[name="spec.fit.epochs"]')
    epochs.fill("0")
    page.click("#submit-run")

    inline = page.locator('[data-path="spec.fit.epochs"] .sf-error')
    expect(inline).to_be_visible()
    expect(inline).to_contain_text("greater than or equal to 1")
    expect(epochs).to_have_attribute("aria-invalid", "true")
    expect(epochs).to_be_focused()
    # the list under the editors keeps every error with its path, as before
    expect(page.locator('#spec-errors [data-field="spec.fit.epochs"]')).to_be_visible()
    assert page.url.endswith("/new?preset=digits-mlp")

    # An error on a layer (the server checks layer arguments) lands on that layer
    open_section(page, "model")
    page.locator(ITEMS).nth(1).get_by_label("Value of units").fill("-3")
    epochs.fill("1")
    expect(inline).to_have_count(0)  # editing the field clears its error
    page.click("#submit-run")
    layer_error = page.locator(f'{ITEMS}[data-path="spec.model.layers.1"] > .sf-errors .sf-error')
    expect(layer_error).to_contain_text("units")
    screenshot(page, "new-run-form-errors")
    assert api.get("/runs", params={"limit": 1}).json()["total"] == total_before


def test_clone_prefills_the_form(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    name = f"clone source {uuid.uuid4().hex[:6]} <i>x</i>"
    response = api.post(
        "/runs",
        json={
            "name": name,
            "preset": "digits-mlp",
            "overrides": {"fit": {"epochs": 1, "batch_size": 48}},
        },
    )
    assert response.status_code == 201, response.text
    source = response.json()
    api.post(f"/runs/{source['id']}/cancel")  # it need not train: its spec is what is cloned

    page.goto(f"{base_url}/runs/{source['id']}")
    clone = page.get_by_role("link", name="Clone")
    expect(clone).to_have_attribute("href", f"/new?clone={source['id']}")
    clone.click()
    page.wait_for_url(re.compile(rf"/new\?clone={source['id']}$"))

    expect(page.locator("#run-name")).to_have_value(f"{name} (clone)")
    expect(page.locator('input[name="spec.fit.batch_size"]')).to_have_value("48")
    expect(page.locator("#clone-note")).to_contain_text(f"run #{source['id']}")
    expect(page.locator("#clone-note")).to_contain_text(name)
    assert page.locator("#clone-note i").count() == 0
    assert editor_spec(page) == source["spec"]
    expect(page.locator("#preset-select")).to_have_value("digits-mlp")

    # a clone of a run that does not exist says so, and still offers a preset
    page.goto(f"{base_url}/new?clone=987654321")
    expect(page.locator("#form-error")).to_contain_text("no run 987654321")
    expect(page.locator("#spec-editor")).not_to_have_value("")


def page_height(page: Page) -> float:
    return float(page.evaluate("() => document.documentElement.scrollHeight"))


def test_digits_shows_the_common_fields_first_and_folds_the_rest(page: Page, base_url: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    open_form(page, base_url)

    # the common fields, dataset first, all within the first screen
    common = page.locator("#spec-form .sf-common > .sf-field")
    assert [common.nth(i).get_attribute("data-path") for i in range(common.count())] == [
        "spec.dataset.name",
        "spec.fit.epochs",
        "spec.fit.batch_size",
        "spec.compile.optimizer.name",
        "spec.compile.optimizer.learning_rate",
    ]
    expect(page.get_by_label("Dataset", exact=True)).to_have_value(re.compile(r"\d+"))
    expect(page.locator("select[name='spec.dataset.name'] option:checked")).to_have_text("digits")
    for name in ("fit.epochs", "fit.batch_size", "compile.optimizer.learning_rate"):
        box = page.locator(f'input[name="spec.{name}"]').bounding_box()
        assert box is not None and box["y"] + box["height"] < 900, (name, box)
    epochs_box = page.locator('input[name="spec.fit.epochs"]').bounding_box()
    assert epochs_box is not None and epochs_box["y"] < 600
    # each field once: not also in its section
    expect(page.locator('[data-path="spec.fit.epochs"]')).to_have_count(1)

    # the rest folded: the page is a fifth of what it was
    sections = page.locator("#spec-form details.sf-section")
    assert sections.count() >= 6
    expect(page.locator("#spec-form details.sf-section[open]")).to_have_count(0)
    height = page_height(page)
    assert height < UNFOLDED_HEIGHT / 3, height
    expect(page.locator('input[name="spec.dataset.test_split"]')).to_be_hidden()

    # unfolded, the Dataset section still leaves out the text and image-folder options
    open_section(page, "dataset")
    expect(page.locator('input[name="spec.dataset.test_split"]')).to_be_visible()
    expect(dataset_field(page, "normalize")).to_be_visible()
    expect(dataset_field(page, "classes")).to_be_visible()
    for name in (*TEXT_OPTIONS, *FOLDER_OPTIONS, "upload_id"):
        expect(dataset_field(page, name)).to_have_count(0)
    note = section(page, "dataset").locator(".sf-hidden-note")
    expect(note).to_contain_text("do not apply when dataset.name is digits")
    expect(note).to_contain_text("Num words")
    # and the optimizer's sgd and rmsprop arguments are not offered for adam
    open_section(page, "compile")
    for name in ("momentum", "nesterov", "rho"):
        expect(page.locator(f'[data-path="spec.compile.optimizer.{name}"]')).to_have_count(0)
    expect(page.locator('[data-path="spec.compile.optimizer.beta_1"]')).to_be_visible()
    screenshot(page, "new-run-form-digits")


def test_imdb_shows_its_text_options(page: Page, base_url: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    open_form(page, base_url)
    open_section(page, "dataset")
    expect(dataset_field(page, "maxlen")).to_have_count(0)
    # another preset: what is shown follows its dataset; the unfolded section stays unfolded
    page.locator("#preset-select").select_option("imdb-lstm")
    expect(page.locator('input[name="spec.dataset.maxlen"]')).to_be_visible()
    expect(page.locator("#run-name")).to_have_value("imdb-lstm")
    # a section unfolded in the same moment as the preset changes stays unfolded too (a details
    # element reports its toggle a task later, after the form was redrawn)
    page.evaluate(
        """() => {
            document.querySelector('details.sf-section[data-section="fit"] > summary').click();
            const select = document.querySelector("#preset-select");
            select.value = "mnist-mlp";
            select.dispatchEvent(new Event("change"));
        }"""
    )
    expect(page.locator("#run-name")).to_have_value("mnist-mlp")
    expect(section(page, "fit")).to_have_attribute("open", "")
    expect(section(page, "dataset")).to_have_attribute("open", "")
    page.goto(f"{base_url}/new?preset=imdb-lstm")
    expect(page.locator('input[name="spec.dataset.maxlen"]')).to_be_attached()
    expect(page.locator('input[name="spec.dataset.maxlen"]')).to_be_hidden()  # folded
    box = page.locator('input[name="spec.fit.epochs"]').bounding_box()
    assert box is not None and box["y"] < 600
    assert page_height(page) < UNFOLDED_HEIGHT / 3
    open_section(page, "dataset")
    expect(page.locator('input[name="spec.dataset.num_words"]')).to_have_value("10000")
    expect(page.locator('input[name="spec.dataset.maxlen"]')).to_have_value("200")
    expect(dataset_field(page, "padding")).to_be_visible()
    expect(dataset_field(page, "truncating")).to_be_visible()
    for name in (*FOLDER_OPTIONS, "normalize", "channels_last", "test_split"):
        expect(dataset_field(page, name)).to_have_count(0)
    # transfer learning and augmentation are for images
    open_section(page, "model")
    expect(page.locator('[data-path="spec.model.base"]')).to_have_count(0)
    expect(page.locator('[data-path="spec.model.augmentation"]')).to_have_count(0)


def test_changing_the_dataset_keeps_what_still_applies(page: Page, base_url: str) -> None:
    open_form(page, base_url)
    page.fill('input[name="spec.fit.epochs"]', "7")
    page.fill('input[name="spec.fit.batch_size"]', "64")
    open_section(page, "dataset")
    page.fill('input[name="spec.dataset.train_limit"]', "300")
    dataset = page.locator('select[name="spec.dataset.name"]')

    dataset.select_option(label="imdb")
    expect(page.locator('input[name="spec.dataset.maxlen"]')).to_be_visible()
    expect(dataset_field(page, "normalize")).to_have_count(0)
    expect(section(page, "dataset")).to_have_attribute("open", "")  # stays unfolded
    expect(page.locator('input[name="spec.fit.epochs"]')).to_have_value("7")
    expect(page.locator('input[name="spec.fit.batch_size"]')).to_have_value("64")
    expect(page.locator('input[name="spec.dataset.train_limit"]')).to_have_value("300")
    page.fill('input[name="spec.dataset.maxlen"]', "300")
    spec = editor_spec(page)
    assert spec["dataset"]["name"] == "imdb" and spec["dataset"]["maxlen"] == 300
    assert spec["fit"]["epochs"] == 7 and spec["dataset"]["train_limit"] == 300

    # an image folder: its path and size appear; maxlen goes, and goes back to its default
    dataset.select_option(label="image_folder")
    expect(page.locator('input[name="spec.dataset.path"]')).to_be_visible()
    expect(dataset_field(page, "image_size")).to_be_visible()
    expect(dataset_field(page, "maxlen")).to_have_count(0)
    assert editor_spec(page)["dataset"]["maxlen"] == 200
    # back on imdb, the maxlen typed comes back
    dataset.select_option(label="imdb")
    expect(page.locator('input[name="spec.dataset.maxlen"]')).to_have_value("300")
    expect(dataset_field(page, "path")).to_have_count(0)

    # the optimizer: momentum is offered for sgd only
    optimizer = page.locator('select[name="spec.compile.optimizer.name"]')
    optimizer.select_option(label="sgd")
    open_section(page, "compile")
    expect(page.locator('[data-path="spec.compile.optimizer.momentum"]')).to_be_visible()
    expect(page.locator('[data-path="spec.compile.optimizer.rho"]')).to_have_count(0)
    page.fill('input[name="spec.compile.optimizer.momentum"]', "0.9")
    optimizer.select_option(label="adam")
    expect(page.locator('[data-path="spec.compile.optimizer.momentum"]')).to_have_count(0)
    assert editor_spec(page)["compile"]["optimizer"]["momentum"] is None  # not sent with adam
    expect(page.locator('input[name="spec.fit.epochs"]')).to_have_value("7")


def test_a_422_in_a_folded_section_opens_it(page: Page, base_url: str, api: httpx.Client) -> None:
    total_before = api.get("/runs", params={"limit": 1}).json()["total"]
    open_form(page, base_url)
    page.fill("#run-name", "a bad validation split")
    spec = editor_spec(page)
    spec["fit"]["validation_split"] = 1.5
    page.fill("#spec-editor", json.dumps(spec, indent=2))
    expect(section(page, "fit")).not_to_have_attribute("open", "")
    page.click("#submit-run")

    fit = section(page, "fit")
    expect(fit).to_have_attribute("open", "")
    inline = page.locator('[data-path="spec.fit.validation_split"] .sf-error')
    expect(inline).to_be_visible()
    expect(inline).to_contain_text("less than 1")
    expect(page.locator('input[name="spec.fit.validation_split"]')).to_be_focused()
    for other in ("model", "callbacks", "stream"):
        expect(section(page, other)).not_to_have_attribute("open", "")
    # folded again, the error's path in the list under the editors unfolds it
    fit.locator("> summary").click()
    expect(inline).to_be_hidden()
    page.locator('#spec-errors [data-field="spec.fit.validation_split"] button').click()
    expect(fit).to_have_attribute("open", "")
    expect(inline).to_be_visible()

    # a value in a field that does not apply to digits is shown (with a warning), and its 422
    # lands on it
    spec["fit"]["validation_split"] = 0.1
    spec["dataset"]["path"] = "/srv/images"
    page.fill("#spec-editor", json.dumps(spec, indent=2))
    page.click("#submit-run")
    expect(section(page, "dataset")).to_have_attribute("open", "")
    path_error = dataset_field(page, "path").locator(".sf-error")
    expect(path_error).to_be_visible()
    expect(path_error).to_contain_text("image_folder")
    expect(dataset_field(page, "path").locator(".sf-warning")).to_contain_text("Does not apply")
    screenshot(page, "new-run-form-folded-error")
    assert api.get("/runs", params={"limit": 1}).json()["total"] == total_before


def test_a_run_submitted_with_high_priority_is_queued_high(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    open_form(page, base_url)
    expect(page.locator("#run-priority")).to_have_value("normal")
    name = f"urgent {uuid.uuid4().hex[:6]}"
    page.fill("#run-name", name)
    spec = editor_spec(page)
    spec["resources"] = {"gpus": 3}  # no worker here offers three: it stays queued
    page.fill("#spec-editor", json.dumps(spec, indent=2))
    page.select_option("#run-priority", "high")
    page.click("#submit-run")

    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#progress-label")).to_contain_text("Queued · high priority · waiting")
    assert api.get(f"/runs/{run_id}").json()["priority"] == "high"
    queued = next(i for i in api.get("/queue").json()["items"] if i["run_id"] == run_id)
    assert queued["priority"] == "high"
    page.goto(f"{base_url}/workers")
    row = page.locator(f'#queue-body tr[data-run-id="{run_id}"]')
    expect(row.locator(".priority")).to_have_text("high")
    assert api.post(f"/runs/{run_id}/cancel").status_code == 200
