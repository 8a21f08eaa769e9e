"""Model templates from plugins: Python modules in the directories ``FITBOARD_PLUGINS`` lists.

A plugin is a ``.py`` file (names starting with ``_`` are skipped) that declares

- ``NAME``: the template name a spec uses (``model.template``), lower case, ``-`` or ``_``;
- ``PARAMS``: a pydantic model of its parameters (``model.params``): the API validates them
  and answers 422 with the field path (``spec.model.params.units``);
- ``build_model(params, *, input_shape, num_classes) -> keras.Model``: called by the worker
  with the validated PARAMS instance, the dataset's input shape (without the batch axis) and
  its number of classes. It returns the model UNCOMPILED, with a known output shape (a
  functional model, or a keras.Model subclass constructed functionally,
  ``MyModel(inputs, outputs)``); Fitboard compiles it with the spec's ``compile`` section.

and optionally ``DESCRIPTION`` (default: the module docstring's first line) and
``custom_objects() -> dict`` (the classes ``keras.saving.load_model`` needs to reload its
models, used when a later run takes this run's model as its base).

The API imports plugin modules to list and validate templates: import Keras inside
``build_model`` so that does not load TensorFlow. Plugins are code the operator installs on
the machines; code is never uploaded through the API. Fitboard's bundled plugins
(``worker/plugins_example``, holding ``custom-loop``) are always searched first;
``FITBOARD_PLUGINS`` (os.pathsep-separated directories) adds more. The API and the worker
must see the same directories.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError

from backend.spec.field_errors import nested_errors

log = logging.getLogger(__name__)

PLUGINS_ENV = "FITBOARD_PLUGINS"
BUILTIN_TEMPLATES = ("mlp",)
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Plugin:
    name: str
    description: str
    params: type[BaseModel]
    build_model: Callable[..., Any]
    module: ModuleType
    path: Path

    def custom_objects(self) -> dict[str, Any]:
        hook = getattr(self.module, "custom_objects", None)
        return dict(hook()) if callable(hook) else {}


@dataclass(frozen=True)
class Discovery:
    plugins: dict[str, Plugin]
    errors: dict[str, str]  # file -> why it is not a usable plugin


def bundled_dir() -> Path | None:
    """worker/plugins_example, shipped with Fitboard (found without importing the worker)."""
    found = importlib.util.find_spec("worker.plugins_example")
    locations = list(found.submodule_search_locations or []) if found else []
    return Path(locations[0]) if locations else None


def plugin_dirs() -> list[Path]:
    """The bundled directory, then those FITBOARD_PLUGINS names, without repeats."""
    dirs: list[Path] = []
    bundled = bundled_dir()
    if bundled is not None:
        dirs.append(bundled.resolve())
    from backend.config import get_settings

    for entry in get_settings().plugins.split(os.pathsep):
        if entry.strip():
            path = Path(entry.strip()).expanduser().resolve()
            if path not in dirs:
                dirs.append(path)
    return dirs


_lock = threading.Lock()
# file -> (its mtime and size when loaded, the plugin or why it is not one)
_loaded: dict[Path, tuple[tuple[int, int], Plugin | str]] = {}


def discover() -> Discovery:
    """Every plugin in plugin_dirs(); a module is (re)loaded only when its file changes."""
    plugins: dict[str, Plugin] = {}
    errors: dict[str, str] = {}
    with _lock:
        for path in _plugin_files(plugin_dirs()):
            try:
                stat = path.stat()
            except OSError:
                continue
            version = (stat.st_mtime_ns, stat.st_size)
            cached = _loaded.get(path)
            if cached is None or cached[0] != version:
                cached = (version, _load_or_reason(path))
                _loaded[path] = cached
            plugin = cached[1]
            if isinstance(plugin, str):
                errors[str(path)] = plugin
            elif plugin.name in BUILTIN_TEMPLATES or plugin.name in plugins:
                taken = (
                    "built in" if plugin.name in BUILTIN_TEMPLATES else plugins[plugin.name].path
                )
                errors[str(path)] = f"template name {plugin.name!r} is taken ({taken})"
            else:
                plugins[plugin.name] = plugin
    return Discovery(plugins=plugins, errors=errors)


def template_names() -> list[str]:
    return [*BUILTIN_TEMPLATES, *sorted(discover().plugins)]


def get_plugin(name: str) -> Plugin:
    """The plugin of a template name (KeyError with the known names and broken files)."""
    discovery = discover()
    if name in discovery.plugins:
        return discovery.plugins[name]
    message = f"unknown template {name!r}; known: {', '.join(template_names())}"
    if discovery.errors:
        broken = "; ".join(f"{Path(p).name}: {why}" for p, why in discovery.errors.items())
        message += f" (plugins that failed to load: {broken})"
    raise KeyError(message)


def check_template(name: str, params: dict[str, Any]) -> None:
    """ValueError for an unknown template; ValidationError at ("params", ...) for bad params."""
    if name in BUILTIN_TEMPLATES:
        return  # the mlp template checks its params when the worker builds it
    try:
        plugin = get_plugin(name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    try:
        plugin.params.model_validate(params)
    except ValidationError as exc:
        raise nested_errors("ModelSpec", ("params",), exc) from None


def catalog() -> list[dict[str, Any]]:
    """Templates for the API: name, description, JSON Schema of params, where it comes from."""
    discovery = discover()
    items: list[dict[str, Any]] = [
        {
            "name": "mlp",
            "description": "Built in: Flatten, Dense (+BatchNormalization) (+Dropout) per entry "
            "of units, then an output layer that fits the dataset.",
            "params_schema": None,
            "source": "builtin",
        }
    ]
    for name in sorted(discovery.plugins):
        plugin = discovery.plugins[name]
        items.append(
            {
                "name": name,
                "description": plugin.description,
                "params_schema": plugin.params.model_json_schema(),
                "source": str(plugin.path),
            }
        )
    return items


def _plugin_files(dirs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in dirs:
        if folder.is_dir():
            files += sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
        else:
            log.warning("plugin directory %s does not exist", folder)
    return files


def _load_or_reason(path: Path) -> Plugin | str:
    try:
        return _load(path)
    except Exception as exc:
        log.warning("plugin %s skipped: %s: %s", path, type(exc).__name__, exc)
        return f"{type(exc).__name__}: {exc}"


def _load(path: Path) -> Plugin:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = re.sub(r"\W", "_", path.stem)
    module_name = f"fitboard_plugin_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # pydantic and dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    name = getattr(module, "NAME", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("NAME must be a lower-case template name like 'custom-loop'")
    params = getattr(module, "PARAMS", None)
    if not (inspect.isclass(params) and issubclass(params, BaseModel)):
        raise ValueError("PARAMS must be a pydantic model class")
    build = getattr(module, "build_model", None)
    if not callable(build):
        raise ValueError("build_model(params, *, input_shape, num_classes) is missing")
    doc = (module.__doc__ or "").strip().splitlines()
    description = getattr(module, "DESCRIPTION", None) or (doc[0] if doc else name)
    return Plugin(
        name=name,
        description=str(description),
        params=params,
        build_model=build,
        module=module,
        path=path,
    )
