"""Chooses between the custom ops and their pure-TF composite twins.

The custom ops are the default. The twins (the same math with stock TF ops) are
used when asked for with `set_implementation("tf")` or `DEEPCTR_OPS_IMPL=tf`,
and automatically while tracing under XLA (`jit_compile=True`), which cannot
compile custom ops.
"""

from __future__ import annotations

import os

IMPLEMENTATIONS = ("op", "tf")
ENV_VAR = "DEEPCTR_OPS_IMPL"


def _validated(name: str, source: str) -> str:
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"{source} must be one of {IMPLEMENTATIONS}, got {name!r}")
    return name


_implementation = _validated(os.environ.get(ENV_VAR, "op"), ENV_VAR)


def set_implementation(name: str) -> None:
    """Selects "op" (custom kernels, the default) or "tf" (composite twins)."""
    global _implementation
    _implementation = _validated(name, "implementation")


def get_implementation() -> str:
    return _implementation


def in_xla_context() -> bool:
    """True while tracing inside a `jit_compile=True` function.

    Uses TF's private control_flow_util (checked on TF 2.21); if that moves,
    this returns False and XLA users must call set_implementation("tf").
    """
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))
    except (ImportError, AttributeError):
        return False


def use_custom_op() -> bool:
    return _implementation == "op" and not in_xla_context()


class implementation:  # noqa: N801  (used like a function: `with implementation("tf"):`)
    """Context manager that selects an implementation for what is traced or run inside."""

    def __init__(self, name: str) -> None:
        self._name = _validated(name, "implementation")
        self._previous: str | None = None

    def __enter__(self) -> None:
        self._previous = get_implementation()
        set_implementation(self._name)

    def __exit__(self, *exc: object) -> None:
        assert self._previous is not None
        set_implementation(self._previous)
