"""Spec side of transfer learning, image folders and plugin templates: fields, schema, errors."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from backend.api.errors import validation_body
from backend.api.spec_router import router
from backend.config import get_settings
from backend.spec import ExperimentSpec, plugins
from backend.spec.presets import PRESETS, deep_merge, resolve_spec
from backend.spec.transfer import BaseSpec
from backend.users.deps import current_user
from backend.users.models import User

HEAD = [
    {"type": "GlobalAveragePooling2D"},
    {"type": "Dense", "units": 1, "activation": "sigmoid"},
]
BASE: dict[str, Any] = {
    "dataset": {"name": "mnist", "classes": [4, 9]},
    "model": {"base": {"application": "VGG16", "weights": None}, "layers": HEAD},
    "compile": {"loss": "binary_crossentropy"},
}


def _spec(raw: dict[str, Any] | None = None, **overrides: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate(deep_merge(raw or BASE, overrides))


def _errors(raw: dict[str, Any] | None = None, **overrides: Any) -> dict[str, str]:
    """field path -> message, as the API's 422 body gives them."""
    with pytest.raises(ValidationError) as info:
        _spec(raw, **overrides)
    body = validation_body(info.value.errors(), prefix=("spec",))
    return {e["field"]: e["message"] for e in body["errors"]}


def test_every_new_field_round_trips_through_a_stored_spec() -> None:
    spec = _spec(
        dataset={"channels_last": True},
        model={
            "base": {"application": "MobileNetV2", "input_shape": [96, 96]},
            "augmentation": {"rotation": 40, "zoom": 0.2, "shear": 0.2, "horizontal_flip": True},
        },
        fit={"phases": [{"epochs": 2}, {"epochs": 1, "learning_rate": 1e-5, "unfreeze_last": 4}]},
    )
    assert spec.model.base is not None and spec.model.base.weights is None
    assert BaseSpec(application="VGG16").weights == "imagenet"  # Keras' default
    assert spec.fit.epochs == 3  # the phases' total
    assert spec.dataset.class_names == ["4", "9"] and spec.dataset.num_classes == 2
    stored = spec.model_dump(mode="json")
    assert ExperimentSpec.model_validate(stored) == spec


def test_old_specs_keep_their_meaning() -> None:
    spec = resolve_spec(preset="digits-mlp")
    assert spec.model.base is None and spec.model.augmentation is None
    assert spec.fit.phases is None and spec.fit.epochs == 20
    assert spec.dataset.classes is None and spec.dataset.path is None
    assert spec.dataset.num_classes == 10
    assert resolve_spec(preset="mnist-mlp").model.template is None
    mlp = {"dataset": {"name": "digits"}, "model": {"template": "mlp", "params": {"units": [8]}}}
    assert ExperimentSpec.model_validate(mlp).model.template == "mlp"


def test_schema_describes_the_new_parts() -> None:
    schema = ExperimentSpec.model_json_schema()
    defs = schema["$defs"]
    assert {"BaseSpec", "AugmentationSpec", "PhaseSpec"} <= set(defs)
    for name, fields in {
        "BaseSpec": {"application", "weights", "from_run", "trainable", "input_shape"},
        "AugmentationSpec": {"rotation", "width_shift", "height_shift", "shear", "zoom"},
        "PhaseSpec": {"epochs", "learning_rate", "unfreeze_last"},
        "DatasetSpec": {"classes", "channels_last", "path", "image_size", "color_mode"},
        "ModelSpec": {"base", "augmentation", "template", "params"},
        "FitSpec": {"phases"},
    }.items():
        props = defs[name]["properties"]
        assert fields <= set(props), name
        for field in fields:
            assert props[field].get("description"), f"{name}.{field} has no description"
        if name != "ModelSpec":
            assert defs[name].get("additionalProperties") is False, name
    assert "image_folder" in defs["DatasetSpec"]["properties"]["name"]["enum"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"model": {"base": {"application": "VGG16", "input_shape": [28, 28]}}},
            "spec.model.base.input_shape",
            "VGG16 needs images of at least 32x32",
        ),
        (
            {"model": {"base": {"application": None, "from_run": 3, "weights": "imagenet"}}},
            "spec.model.base.weights",
            "weights apply to an application",
        ),
        ({"model": {"base": {"application": None}}}, "spec.model.base", "either 'application'"),
        (
            {"dataset": {"name": "imdb", "classes": None}},
            "spec.model.base",
            "base needs an image dataset; imdb is text",
        ),
        (
            {"model": {"augmentation": {"rescale": 0.5}}},
            "spec.model.augmentation.rescale",
            "dataset.normalize already scales",
        ),
        (
            {"model": {"base": None}, "fit": {"phases": [{"epochs": 1, "unfreeze_last": 2}]}},
            "spec.fit.phases.0.unfreeze_last",
            "unfreeze_last needs model.base",
        ),
        (
            {"fit": {"epochs": 5, "phases": [{"epochs": 1}, {"epochs": 1}]}},
            "spec.fit.epochs",
            "differs from the phases' total (2)",
        ),
        (
            {"model": {"base": {"trainable": True}}, "fit": {"phases": [{"epochs": 1}]}},
            "spec.model.base.trainable",
            "leave base.trainable false",
        ),
        ({"fit": {"phases": []}}, "spec.fit.phases", "at least 1 item"),
        ({"dataset": {"classes": [4, 10]}}, "spec.dataset.classes", "no class 10"),
        ({"dataset": {"classes": ["4", "four"]}}, "spec.dataset.classes", "no class named"),
        ({"dataset": {"classes": [4, 4]}}, "spec.dataset.classes", "listed twice"),
        ({"dataset": {"path": "/data"}}, "spec.dataset.path", "image_folder dataset only"),
        ({"dataset": {"name": "image_folder"}}, "spec.dataset.path", "needs a path"),
    ],
)
def test_bad_combinations_name_the_field(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    errors = _errors(**overrides)
    assert field in errors, errors
    assert message in errors[field]


def test_image_folder_fields_get_defaults() -> None:
    spec = _spec(dataset={"name": "image_folder", "path": "/srv/cats", "classes": ["cat", "dog"]})
    assert spec.dataset.image_size == [150, 150] and spec.dataset.color_mode == "rgb"
    assert spec.dataset.num_classes == 0  # known once the worker reads the folders


# --- plugin templates ---------------------------------------------------------------------

_PLUGIN = '''
"""A tiny test plugin."""
from pydantic import BaseModel, ConfigDict, Field

NAME = "{name}"


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(default=4, ge=1)


PARAMS = Params


def build_model(params, *, input_shape, num_classes):
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "tiny.py").write_text(textwrap.dedent(_PLUGIN).format(name="tiny"))
    (folder / "broken.py").write_text("NAME = 'broken'\nraise RuntimeError('half written')\n")
    (folder / "clash.py").write_text(textwrap.dedent(_PLUGIN).format(name="custom-loop"))
    (folder / "_private.py").write_text("raise SystemExit('never imported')\n")
    monkeypatch.setenv(plugins.PLUGINS_ENV, f"{tmp_path / 'missing'}{os.pathsep}{folder}")
    get_settings.cache_clear()
    yield folder
    monkeypatch.delenv(plugins.PLUGINS_ENV)
    get_settings.cache_clear()


def test_bundled_plugin_is_found_without_importing_keras() -> None:
    found = plugins.discover()
    assert "custom-loop" in found.plugins
    plugin = found.plugins["custom-loop"]
    assert plugin.path.parent == plugins.bundled_dir()
    assert "train_step" in plugin.description
    assert "tensorflow" not in plugin.module.__dict__ and "keras" not in plugin.module.__dict__
    assert plugins.template_names()[:2] == ["mlp", "custom-loop"]


def test_plugin_directories_are_scanned_and_bad_files_reported(plugin_dir: Path) -> None:
    found = plugins.discover()
    assert {"custom-loop", "tiny"} <= set(found.plugins)
    assert found.plugins["custom-loop"].path.parent == plugins.bundled_dir()  # bundled first
    errors = {Path(path).name: why for path, why in found.errors.items()}
    assert set(errors) == {"broken.py", "clash.py"}
    assert "half written" in errors["broken.py"]
    assert "'custom-loop' is taken" in errors["clash.py"]
    spec = _spec(
        {"dataset": {"name": "digits"}, "model": {"template": "tiny", "params": {"width": 2}}}
    )
    assert spec.model.template == "tiny"
    unknown = _errors({"dataset": {"name": "digits"}, "model": {"template": "nope"}})
    assert "unknown template 'nope'; known: mlp, custom-loop, tiny" in unknown["spec.model"]
    assert "broken.py: RuntimeError: half written" in unknown["spec.model"]


def test_plugin_params_are_validated_with_the_field_path() -> None:
    raw = {"dataset": {"name": "mnist"}, "model": {"template": "custom-loop"}}
    assert _spec(raw).model.params == {}
    errors = _errors(raw, model={"params": {"units": 0, "activation": "swish", "depth": 3}})
    assert set(errors) == {
        "spec.model.params.units",
        "spec.model.params.activation",
        "spec.model.params.depth",
    }
    assert "greater than or equal to 1" in errors["spec.model.params.units"]
    assert "Extra inputs are not permitted" in errors["spec.model.params.depth"]
    with_base = _errors(raw, model={"base": {"application": "VGG16"}})
    assert "base goes with 'layers'" in with_base["spec.model"]


def test_templates_endpoint_lists_plugins_with_their_parameter_schema(plugin_dir: Path) -> None:
    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    # reads need a signed-in user; this test is about the catalogue, not about who asks
    app.dependency_overrides[current_user] = lambda: User(id=1, username="t", role="viewer")
    with TestClient(app) as client:
        templates = {t["name"]: t for t in client.get("/api/v1/spec/templates").json()}
    assert list(templates)[:1] == ["mlp"] and templates["mlp"]["source"] == "builtin"
    assert {"custom-loop", "tiny"} <= set(templates)
    schema = templates["custom-loop"]["params_schema"]
    assert schema["properties"]["units"]["default"] == 64
    assert schema["additionalProperties"] is False


def test_every_preset_validates_and_the_new_ones_are_there() -> None:
    assert {"imdb-lstm", "mnist-cnn", "transfer-vgg16", "custom-loop"} <= set(PRESETS)
    for name in PRESETS:
        resolve_spec(preset=name)
    vgg = resolve_spec(preset="transfer-vgg16")
    assert vgg.model.base is not None and vgg.model.base.weights == "imagenet"
    assert "~/.keras/models" in PRESETS["transfer-vgg16"]["description"]
    assert [p.unfreeze_last for p in vgg.fit.phases or []] == [0, 4]
    offline = resolve_spec(
        preset="transfer-vgg16", overrides={"model": {"base": {"weights": None}}}
    )
    assert offline.model.base is not None and offline.model.base.weights is None
