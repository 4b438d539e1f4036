"""Test helpers: DeepCTR oracle calls, gradients, ragged length generators, saving."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def ragged_lengths(rng: np.random.Generator, batch: int, time: int) -> np.ndarray:
    """Lengths [batch, 1] that cover 0, 1, T, > T and negatives, plus random ones."""
    special = np.array([0, 1, time, time + 3, -2], dtype=np.int64)
    lengths = rng.integers(0, time + 1, size=batch)
    lengths[: min(batch, len(special))] = special[: min(batch, len(special))]
    return lengths.reshape(batch, 1)


def value_and_input_grads(fn, inputs: list, differentiate: tuple[int, ...] = (0,),
                          upstream_seed: int = 7):
    """fn(inputs) and d(sum(fn * upstream))/d inputs[i] for i in differentiate."""
    tensors = [tf.convert_to_tensor(x) for x in inputs]
    with tf.GradientTape() as tape:
        for i in differentiate:
            tape.watch(tensors[i])
        out = fn(tensors)
        upstream = tf.constant(
            np.random.default_rng(upstream_seed).standard_normal(out.shape.as_list()),
            dtype=out.dtype)
        loss = tf.reduce_sum(out * upstream)
    grads = tape.gradient(loss, [tensors[i] for i in differentiate])
    return out.numpy(), [g.numpy() if g is not None else None for g in grads]


def save_formats() -> list[str]:
    """The active Keras's model formats: .keras (Keras 3); .h5 and SavedModel (tf_keras)."""
    from deepctr_ops.compat import IS_KERAS_3

    return ["keras"] if IS_KERAS_3 else ["h5", "tf"]


def save_and_load(model, fmt: str, directory):
    """Saves `model` in `fmt` (see save_formats) under `directory`; loads it back
    with the package's custom_objects."""
    from deepctr_ops import custom_objects
    from deepctr_ops.compat import keras

    name = {"keras": "model.keras", "h5": "model.h5", "tf": "saved_model"}[fmt]
    path = os.path.join(directory, name)
    if fmt == "tf":
        model.save(path, save_format="tf")
    else:
        model.save(path)
    return keras.models.load_model(path, custom_objects=custom_objects)
