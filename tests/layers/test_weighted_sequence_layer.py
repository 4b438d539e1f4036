"""WeightedSequenceLayer against DeepCTR's (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr.layers.sequence import WeightedSequenceLayer as DeepCTRWeighted
from deepctr_ops.compat import keras
from deepctr_ops.layers.sequence import (
    SequencePoolingLayer,
    WeightedSequenceLayer,
    custom_objects,
)
from helpers import ragged_lengths, value_and_input_grads


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("length_dtype", [np.int32, np.int64, np.float32])
def test_matches_deepctr(rng, normalize, length_dtype):
    b, t, e = 16, 6, 4
    key = rng.standard_normal((b, t, e)).astype(np.float32)
    weight = rng.standard_normal((b, t, 1)).astype(np.float32)
    lengths = ragged_lengths(rng, b, t).astype(length_dtype)
    ours, our_grads = value_and_input_grads(WeightedSequenceLayer(normalize),
                                            [key, lengths, weight], differentiate=(0, 2))
    theirs, their_grads = value_and_input_grads(DeepCTRWeighted(normalize),
                                                [key, lengths, weight], differentiate=(0, 2))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    for g, h in zip(our_grads, their_grads):
        np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-7)


def test_empty_row_with_normalization_is_uniform_over_all_steps(rng):
    key = rng.standard_normal((1, 4, 2)).astype(np.float32)
    out = WeightedSequenceLayer(True)([key, np.array([[0]]), np.ones((1, 4, 1), np.float32)])
    np.testing.assert_allclose(out.numpy(), key / 4, rtol=1e-6)


@pytest.mark.parametrize("normalize", [True, False])
def test_mask_mode_matches_deepctr(rng, normalize):
    key = rng.standard_normal((8, 5, 3)).astype(np.float32)
    weight = rng.standard_normal((8, 5, 1)).astype(np.float32)
    mask = rng.random((8, 5)) < 0.5
    ours = WeightedSequenceLayer(normalize, supports_masking=True)([key, weight],
                                                                   mask=[mask, mask])
    theirs = DeepCTRWeighted(normalize, supports_masking=True)([key, weight], mask=[mask, mask])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7)


def test_rank2_weights_are_accepted(rng):
    key = rng.standard_normal((3, 4, 2)).astype(np.float32)
    weight = rng.standard_normal((3, 4)).astype(np.float32)
    lengths = np.array([[1], [4], [2]])
    out2 = WeightedSequenceLayer(True)([key, lengths, weight])
    out3 = WeightedSequenceLayer(True)([key, lengths, weight[..., None]])
    np.testing.assert_allclose(out2.numpy(), out3.numpy(), rtol=1e-6)


def test_weighted_then_pooled_in_a_trained_model_matches_deepctr(rng):
    t, e = 5, 3
    values = rng.standard_normal((32, t, e)).astype(np.float32)
    lengths = rng.integers(0, t + 1, size=(32, 1)).astype(np.int32)
    weights = rng.standard_normal((32, t, 1)).astype(np.float32)
    y = rng.random((32, 1)).astype(np.float32)

    def build(weighted_cls, pool_cls):
        v = keras.Input(shape=(t, e))
        n = keras.Input(shape=(1,), dtype="int32")
        w = keras.Input(shape=(t, 1))
        h = keras.layers.Dense(e, kernel_initializer=keras.initializers.GlorotUniform(seed=1))(v)
        h = weighted_cls(True)([h, n, w])
        h = pool_cls("sum")([h, n])
        out = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed=2))(
            keras.layers.Flatten()(h))
        return keras.Model([v, n, w], out)

    from deepctr.layers.sequence import SequencePoolingLayer as DeepCTRPooling

    ours = build(WeightedSequenceLayer, SequencePoolingLayer)
    theirs = build(DeepCTRWeighted, DeepCTRPooling)
    theirs.set_weights(ours.get_weights())
    for m in (ours, theirs):
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        m.fit([values, lengths, weights], y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_shapes_and_mask():
    layer = WeightedSequenceLayer(False, supports_masking=True, name="w")
    config = layer.get_config()
    assert config["weight_normalization"] is False and config["supports_masking"] is True
    clone = custom_objects["WeightedSequenceLayer"].from_config(config)
    assert clone.weight_normalization is False and clone.name == "w"
    assert tuple(layer.compute_output_shape([(None, 5, 3), (None, 5, 1)])) == (None, 5, 3)
    mask = tf.constant([[True, False]])
    assert layer.compute_mask(None, [mask, mask]) is mask
    assert WeightedSequenceLayer().compute_mask(None, None) is None


def test_supports_masking_without_mask_is_a_value_error():
    with pytest.raises(ValueError, match="masking"):
        WeightedSequenceLayer(supports_masking=True)([tf.ones([1, 2, 3]), tf.ones([1, 2, 1])])
