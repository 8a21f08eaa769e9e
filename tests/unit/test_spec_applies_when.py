"""x-applies-when in the spec's JSON Schema: which fields apply to which dataset / optimizer."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from backend.spec import ExperimentSpec
from backend.spec.catalog import DATASETS
from backend.spec.dataset_options import (
    APPLIES_WHEN,
    DATASET_NAMES,
    FIELD_DATASETS,
    image_datasets,
)
from backend.spec.model import OPTIMIZER_ONLY, DatasetSpec, OptimizerSpec


def test_dataset_names_are_the_specs_choices() -> None:
    choices = typing.get_args(DatasetSpec.model_fields["name"].annotation)
    assert set(choices) == set(DATASET_NAMES)
    assert set(DATASETS) < set(DATASET_NAMES)
    assert set(FIELD_DATASETS) <= set(DatasetSpec.model_fields)


def test_the_schema_says_where_each_dataset_field_applies() -> None:
    defs = ExperimentSpec.model_json_schema()["$defs"]
    props = defs["DatasetSpec"]["properties"]
    assert props["num_words"][APPLIES_WHEN] == {"dataset.name": ["imdb", "reuters", "upload"]}
    assert props["path"][APPLIES_WHEN] == {"dataset.name": ["image_folder"]}
    assert "digits" in props["test_split"][APPLIES_WHEN]["dataset.name"]
    assert "mnist" not in props["test_split"][APPLIES_WHEN]["dataset.name"]
    assert "imdb" not in props["channels_last"][APPLIES_WHEN]["dataset.name"]
    for common in ("name", "train_limit", "test_limit", "classes"):
        assert APPLIES_WHEN not in props[common]
    model = defs["ModelSpec"]["properties"]
    assert model["base"][APPLIES_WHEN] == {"dataset.name": image_datasets()}
    optimizer = defs["OptimizerSpec"]["properties"]
    assert optimizer["rho"][APPLIES_WHEN] == {"compile.optimizer.name": ["rmsprop"]}
    assert APPLIES_WHEN not in optimizer["learning_rate"]


@pytest.mark.parametrize("field", ["path", "image_size", "color_mode", "channels_last"])
@pytest.mark.parametrize("dataset", ["imdb", "reuters", "digits", "mnist"])
def test_a_field_the_schema_says_does_not_apply_is_refused(field: str, dataset: str) -> None:
    """The form hides what does not apply; where the server refuses it, the two agree."""
    value = {"path": "/data", "image_size": [32, 32], "color_mode": "rgb"}.get(field, True)
    applies = dataset in FIELD_DATASETS[field]
    if applies:
        DatasetSpec.model_validate({"name": dataset, field: value})
    else:
        with pytest.raises(ValidationError):
            DatasetSpec.model_validate({"name": dataset, field: value})


@pytest.mark.parametrize("arg", sorted(OPTIMIZER_ONLY))
def test_optimizer_arguments_follow_their_optimizers(arg: str) -> None:
    value = True if arg == "nesterov" else 0.5
    for name in ("sgd", "adam", "rmsprop"):
        if name in OPTIMIZER_ONLY[arg]:
            OptimizerSpec.model_validate({"name": name, arg: value})
        else:
            with pytest.raises(ValidationError, match="applies to"):
                OptimizerSpec.model_validate({"name": name, arg: value})
