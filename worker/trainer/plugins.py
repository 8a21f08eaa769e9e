"""Build the model of a plugin template (see backend.spec.plugins for the plugin contract)."""

from __future__ import annotations

import keras

from backend.spec import ExperimentSpec
from backend.spec.plugins import BUILTIN_TEMPLATES, get_plugin
from worker.trainer.datasets import Dataset


class PluginModelError(ValueError):
    """A plugin's build_model broke the contract (not a Model, compiled, no output shape)."""


def is_plugin_template(template: str | None) -> bool:
    return template is not None and template not in BUILTIN_TEMPLATES


def build_plugin_model(spec: ExperimentSpec, dataset: Dataset) -> keras.Model:
    """The plugin's uncompiled model for this dataset; the caller compiles it."""
    name = spec.model.template or ""
    try:
        plugin = get_plugin(name)
    except KeyError as exc:  # the plugin went away between validation and training
        raise PluginModelError(exc.args[0]) from None
    params = plugin.params.model_validate(spec.model.params)
    model = plugin.build_model(
        params, input_shape=tuple(dataset.input_shape), num_classes=dataset.num_classes
    )
    where = f"plugin {name!r} ({plugin.path})"
    if not isinstance(model, keras.Model):
        raise PluginModelError(
            f"{where}: build_model returned {type(model).__name__}, not a keras.Model"
        )
    if getattr(model, "compiled", False):
        raise PluginModelError(
            f"{where}: build_model returned a compiled model; return it uncompiled, Fitboard "
            "compiles it with the spec's compile section"
        )
    try:
        model.output_shape  # noqa: B018  (subclassed models without a graph have none)
    except AttributeError:
        raise PluginModelError(
            f"{where}: the model has no output_shape; build it functionally, e.g. "
            "MyModel(inputs, outputs) for a keras.Model subclass"
        ) from None
    return model
