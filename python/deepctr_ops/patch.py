"""Drop-in for DeepCTR: swap its sequence layer classes for deepctr-ops' ones.

    import deepctr_ops
    deepctr_ops.patch_deepctr()            # from now on
    model = deepctr.models.DIN(...)        # built from the fast layers

    with deepctr_ops.patch_deepctr():      # or only inside the block
        model = deepctr.models.DIEN(...)

DeepCTR's models import the layer classes by name into their own modules
(`from ...layers.sequence import AttentionSequencePoolingLayer`), so swapping
`deepctr.layers.sequence` alone would not reach them: every already-imported
`deepctr` module's attribute that *is* one of DeepCTR's sequence layer classes
is replaced, and so is each entry of `deepctr.layers.custom_objects` (used to
load saved DeepCTR models). Only the classes deepctr-ops implements are
swapped. DeepCTR's `DIEN` also asks a TF1 session to initialise its variables,
which fails in TF2's eager mode; while patched, it builds without that call
(TF2 variables are initialised when created). The context-manager form, or
`unpatch_deepctr()`, restores the originals.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import threading
from typing import Any

from .layers.sequence import custom_objects as _our_layers

_lock = threading.Lock()
# (module or dict, name, original) for every swap, in order.
_swaps: list[tuple[Any, str, Any]] = []


def _deepctr_modules():
    # Import the models and inputs modules so that their references are there
    # to swap (importing a module later would bind DeepCTR's, or ours if the
    # patch is active: `deepctr.layers.sequence` is patched first).
    for package in ("deepctr.layers", "deepctr.inputs", "deepctr.feature_column",
                    "deepctr.models"):
        importlib.import_module(package)
    models = importlib.import_module("deepctr.models")
    for info in pkgutil.walk_packages(models.__path__, "deepctr.models."):
        if "multitask" not in info.name:
            importlib.import_module(info.name)
    return [module for name, module in sorted(sys.modules.items())
            if module is not None and (name == "deepctr" or name.startswith("deepctr."))]


class _Patch:
    """What patch_deepctr returns: usable as a context manager."""

    def __enter__(self) -> _Patch:
        return self

    def __exit__(self, *exc) -> None:
        unpatch_deepctr()


def patch_deepctr() -> _Patch:
    """Swaps DeepCTR's sequence layers for deepctr-ops' (idempotent).

    Returns an object that, used with `with`, restores DeepCTR's classes on exit.
    """
    with _lock:
        if _swaps:
            return _Patch()
        sequence = importlib.import_module("deepctr.layers.sequence")
        originals = {name: getattr(sequence, name) for name in _our_layers
                     if isinstance(getattr(sequence, name, None), type)}
        by_class = {original: _our_layers[name] for name, original in originals.items()}
        for module in [sequence, *_deepctr_modules()]:
            for attr, value in list(vars(module).items()):
                if isinstance(value, type) and value in by_class:
                    _swaps.append((module, attr, value))
                    setattr(module, attr, by_class[value])
        _swap_tf1_session_users()
        registry = getattr(importlib.import_module("deepctr.layers"), "custom_objects", {})
        for key, value in list(registry.items()):
            if isinstance(value, type) and value in by_class:
                _swaps.append((registry, key, value))
                registry[key] = by_class[value]
    return _Patch()


class _VariablesAlreadyInitialised:
    """Stands in for the TF1 session DeepCTR's DIEN asks for only to run
    `global_variables_initializer()`: in TF2, variables are initialised when
    created, and that call fails in eager mode ("The Session graph is empty")."""

    def run(self, *args, **kwargs) -> None:
        return None


class _Overlay:
    """`target` with some attributes (nested by dicts) replaced."""

    def __init__(self, target: Any, overrides: dict[str, Any]):
        self._target = target
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            override = self._overrides[name]
            if isinstance(override, dict):
                return _Overlay(getattr(self._target, name), override)
            return override
        return getattr(self._target, name)


def _tf_without_tf1_session(tf: Any) -> _Overlay:
    real = tf.compat.v1.keras.backend.get_session

    def get_session(*args, **kwargs):
        if tf.executing_eagerly():
            return _VariablesAlreadyInitialised()
        return real(*args, **kwargs)

    return _Overlay(tf, {"compat": {"v1": {"keras": {"backend": {"get_session": get_session}}}}})


def _swap_tf1_session_users() -> None:
    """DeepCTR's DIEN module sees a `tf` whose TF1 session is a no-op in eager mode."""
    dien = importlib.import_module("deepctr.models.sequence.dien")
    _swaps.append((dien, "tf", dien.tf))
    dien.tf = _tf_without_tf1_session(dien.tf)


def unpatch_deepctr() -> None:
    """Restores DeepCTR's own classes everywhere patch_deepctr swapped them."""
    with _lock:
        while _swaps:
            target, name, original = _swaps.pop()
            if isinstance(target, dict):
                target[name] = original
            else:
                setattr(target, name, original)


def is_patched() -> bool:
    return bool(_swaps)
