"""Building sub-layers inside a parent's build (DeepCTR builds them lazily on first call)."""

from __future__ import annotations

import tensorflow as tf


def build_sublayer(layer, input_shape) -> None:
    """Builds `layer` now, under its own name scope.

    Building in the parent's `build` is what lets Keras 3 restore the weights
    after `from_config` (and model loading). The name scope gives tf_keras
    weight names `parent/sub/weight`, unique within the parent, as HDF5 saving
    needs (and as DeepCTR's lazily built sub-layers get).
    """
    with tf.name_scope(layer.name):
        layer.build(input_shape)
