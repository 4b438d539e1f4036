"""NaN/Inf rules and second-order gradients at the layer level, in the Keras
flavour of this run (CI runs tests/layers under Keras 3 and under tf_keras).

* SequencePoolingLayer agrees with DeepCTR's layer on ±Inf and NaN in valid
  steps; in padded steps it differs on purpose: DeepCTR's `x * mask` turns a
  padded Inf into NaN (and a padded NaN stays NaN), ours never reads padding.
* A gradient penalty and a Hessian-vector product through SequencePoolingLayer
  and Transformer (custom ops) equal those through the composite twins.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr.layers.sequence import SequencePoolingLayer as DeepCTRPooling
from deepctr_ops.layers.sequence import SequencePoolingLayer, Transformer
from helpers import on_op_and_twin, penalty_and_hvp

MODES = ["sum", "mean", "max"]
LENGTHS = np.array([[3], [1], [5], [2]])


def _values():
    x = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3) % 11 - 5.0
    x[0, 1, 0], x[0, 2, 0] = np.inf, -np.inf  # inf + -inf in valid steps.
    x[2, 4, 1] = np.nan                       # NaN in a valid step.
    x[3, 0, 2] = np.inf                       # +inf in a valid step.
    return x


@pytest.mark.parametrize("mode", MODES)
def test_valid_step_specials_match_deepctr(mode):
    x = _values()
    ours = SequencePoolingLayer(mode)([tf.constant(x), tf.constant(LENGTHS)]).numpy()
    theirs = DeepCTRPooling(mode)([tf.constant(x), tf.constant(LENGTHS)]).numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, equal_nan=True)
    assert np.isnan(ours[2, 0, 1])  # NaN wins max too (DeepCTR: reduce_max).


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("special", [np.nan, np.inf])
def test_padded_specials_do_not_leak_unlike_deepctr(mode, special):
    x = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3) % 11 - 5.0
    dirty = x.copy()
    dirty[1, 3, :] = special  # Row 1 has one valid step; step 3 is padding.
    ours = SequencePoolingLayer(mode)([tf.constant(dirty), tf.constant(LENGTHS)]).numpy()
    clean = SequencePoolingLayer(mode)([tf.constant(x), tf.constant(LENGTHS)]).numpy()
    np.testing.assert_array_equal(ours, clean)
    theirs = DeepCTRPooling(mode)([tf.constant(dirty), tf.constant(LENGTHS)]).numpy()
    if mode != "max":  # x * mask: inf * 0 and nan * 0 are NaN.
        assert np.isnan(theirs[1]).all()


@pytest.mark.parametrize("mode", MODES)
def test_pooling_layer_second_order_matches_twin(rng, mode):
    x = np.round(rng.standard_normal((4, 5, 3)) * 2)  # Ties for max.
    layer = SequencePoolingLayer(mode, dtype="float64")
    weights = tf.constant(rng.standard_normal((4, 1, 3)))
    direction = tf.constant(rng.standard_normal(x.shape))
    ops, twin = on_op_and_twin(penalty_and_hvp, lambda v: layer([v, tf.constant(LENGTHS)]), x,
                               weights, direction)
    assert np.abs(ops[-1]).max() > 0
    for a, b in zip(ops, twin):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_transformer_second_order_matches_twin(rng):
    b, t, e = 3, 6, 8
    layer = Transformer(att_embedding_size=2, head_num=4, use_positional_encoding=False,
                        blinding=True)
    lengths = tf.constant([[6], [2], [0]])
    x = rng.standard_normal((b, t, e)).astype(np.float32)
    layer([tf.constant(x), tf.constant(x), lengths, lengths])  # Builds the weights.
    weights = tf.constant(rng.standard_normal((b, 1, e)).astype(np.float32))
    direction = tf.constant(rng.standard_normal(x.shape).astype(np.float32))
    ops, twin = on_op_and_twin(penalty_and_hvp, lambda v: layer([v, v, lengths, lengths]), x,
                               weights, direction, variables=layer.trainable_weights)
    assert np.abs(ops[-1]).max() > 0
    for a, b_ in zip(ops, twin):  # float32: the fused exp may differ in the last bit.
        np.testing.assert_allclose(a, b_, rtol=2e-4, atol=2e-4 * np.abs(b_).max())
