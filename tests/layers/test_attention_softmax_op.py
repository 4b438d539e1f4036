"""DeepCTR>AttentionSoftmax (custom op) against its pure-TF twin and a NumPy statement."""

from __future__ import annotations

import deepctr_ops
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf
from deepctr_ops.ops.attention import attention_softmax
from helpers import value_and_input_grads


def _numpy(scores, key_valid, divisor, blinding, heads):
    batch, tk = key_valid.shape
    tq = scores.shape[1]
    eligible = np.broadcast_to(key_valid[:, None, :], (batch, tq, tk)).copy()
    if blinding:
        eligible &= ~np.eye(tq, tk, dtype=bool)[None]
    s = np.where(np.tile(eligible, (heads, 1, 1)), scores.astype(np.float64) / divisor, ref.NEG)
    return ref.softmax(s)


@pytest.mark.parametrize("heads,batch,tq,tk", [(2, 3, 5, 5), (3, 4, 17, 17), (1, 2, 9, 21),
                                               (2, 2, 1, 8), (4, 1, 50, 50), (2, 0, 4, 4)])
@pytest.mark.parametrize("blinding", [False, True])
@pytest.mark.parametrize("divisor", [1.0, 2.828427])
def test_op_matches_twin_and_numpy(heads, batch, tq, tk, blinding, divisor, rng):
    scores = (rng.standard_normal((heads * batch, tq, tk)) * 5).astype(np.float32)
    key_valid = rng.random((batch, tk)) < 0.6
    if batch > 1:
        key_valid[0] = False  # every key masked: uniform row
        key_valid[1] = False
        key_valid[1, 0] = True  # with blinding, query 0 has no eligible key
    results = {}
    for impl in ("op", "tf"):
        with deepctr_ops.implementation(impl):
            results[impl] = value_and_input_grads(
                lambda xs: attention_softmax(xs[0], key_valid, divisor, blinding), [scores])
    (p_op, (g_op,)), (p_tf, (g_tf,)) = results["op"], results["tf"]
    np.testing.assert_allclose(p_op, p_tf, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_op, g_tf, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p_op, _numpy(scores, key_valid, divisor, blinding, heads),
                               rtol=1e-5, atol=1e-7)
    if batch > 1:
        np.testing.assert_array_equal(p_op[0], np.full((tq, tk), 1.0 / tk, np.float32))
        np.testing.assert_array_equal(g_op[0], 0.0)  # nothing flows to masked logits
    masked = ~np.tile(key_valid[:, None, :], (heads, tq, 1))
    assert np.all(g_op[masked] == 0)


def test_op_rejects_bad_shapes():
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        attention_softmax(tf.zeros((5, 3, 3)), tf.ones((2, 3), tf.bool))
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        attention_softmax(tf.zeros((4, 3, 3)), tf.ones((2, 4), tf.bool))
