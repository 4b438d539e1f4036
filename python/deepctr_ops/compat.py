"""Keras 3 vs tf_keras differences, in one place.

`tf.keras` is Keras 3 on TF 2.16+, or tf_keras when TF_USE_LEGACY_KERAS=1 is set
before TensorFlow is imported. The layers subclass whichever is active.
"""

from __future__ import annotations

import tensorflow as tf

keras = tf.keras
IS_KERAS_3 = not keras.__name__.startswith("tf_keras")
Layer = keras.layers.Layer


def register_serializable(cls: type) -> type:
    """Registers a layer under "deepctr_ops>ClassName" for model loading.

    `keras.utils.register_keras_serializable` is the active Keras's own: Keras
    3's `keras.saving` one, or tf_keras's.
    """
    return keras.utils.register_keras_serializable(package="deepctr_ops", name=cls.__name__)(cls)
