"""Telling one Keras input shape from a list of them (layers that take either)."""

from __future__ import annotations

import tensorflow as tf


def is_shape(shape) -> bool:
    """True for one shape (TensorShape or tuple of dims), False for a list of shapes."""
    if isinstance(shape, tf.TensorShape):
        return True
    return isinstance(shape, (list, tuple)) and all(
        d is None or isinstance(d, int) or hasattr(d, "value") for d in shape
    )
