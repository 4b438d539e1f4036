"""The fused bidirectional op DeepCTR>BidirectionalDynamicGru: outputs and
gradients equal a forward and a reverse DeepCTR>DynamicGru concatenated (and
the float64 NumPy reference), the twin, numerical gradients; bad weights name
the argument."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops import _loader, implementation
from deepctr_ops.ops import bidirectional_dynamic_gru, dynamic_gru
from helpers import check_sequence_and_final_gradients, gates_saved_only_for_a_gradient
from kernels import gru_reference as ref

CELLS = ["GRU", "AIGRU", "AGRU", "AUGRU"]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _case(rng, cell, dtype=np.float64, b=41, t=6, e=5, u=7):
    x, lengths, w, att = ref.random_case(rng, b, t, e, u, cell, dtype)
    lengths[:4] = [0, 1, t, t + 3]  # empty, one step, full, longer than T
    _, _, w2, _ = ref.random_case(rng, b, t, e, u, cell, dtype)
    fw = [w["wg"], w["bg"], w["wc"], w["bc"]]
    bw = [w2["wg"], w2["bg"], w2["wc"], w2["bc"]]
    return x, lengths, fw, bw, att


def _fused(x, lengths, fw, bw, att, cell):
    return bidirectional_dynamic_gru(x, lengths, fw, bw, att_scores=att, cell=cell)


def _two_ops(x, lengths, fw, bw, att, cell):
    f = dynamic_gru(x, lengths, *fw, att_scores=att, cell=cell)
    b = dynamic_gru(x, lengths, *bw, att_scores=att, cell=cell, reverse=True)
    return tf.concat([f[0], b[0]], -1), tf.concat([f[1], b[1]], -1)


def _with_grads(fn, x, lengths, fw, bw, att, cell):
    tensors = [tf.constant(v) for v in [x, *fw, *bw] + ([att] if att is not None else [])]
    rng = np.random.default_rng(5)
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs, final = fn(tensors[0], lengths, tensors[1:5], tensors[5:9],
                            tensors[9] if att is not None else None, cell)
        loss = (tf.reduce_sum(outputs * rng.standard_normal(outputs.shape))
                + tf.reduce_sum(final * rng.standard_normal(final.shape)))
    return [outputs.numpy(), final.numpy()] + [g.numpy() for g in tape.gradient(loss, tensors)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_op_equals_two_directions_concatenated_with_gradients(rng, cell, dtype):
    x, lengths, fw, bw, att = _case(rng, cell, dtype)
    got = _with_grads(_fused, x, lengths, fw, bw, att, cell)
    want = _with_grads(_two_ops, x, lengths, fw, bw, att, cell)
    assert got[0].shape == (41, 6, 14) and got[1].shape == (41, 14)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, **TOL[dtype])


@pytest.mark.parametrize("cell", ["GRU", "AUGRU"])
def test_fused_op_matches_the_numpy_reference(rng, cell):
    x, lengths, fw, bw, att = _case(rng, cell)
    outputs, final = _fused(x, lengths, fw, bw, att, cell)
    op_cell = "GRU" if cell == "AIGRU" else cell
    want_f = ref.forward(x, lengths, *fw, att=att, cell=op_cell)
    want_b = ref.forward(x, lengths, *bw, att=att, cell=op_cell, reverse=True)
    np.testing.assert_allclose(outputs.numpy(), np.concatenate([want_f[0], want_b[0]], -1),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(final.numpy(), np.concatenate([want_f[1], want_b[1]], -1),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("cell", ["GRU", "AUGRU"])
def test_fused_op_matches_the_twin(rng, cell):
    x, lengths, fw, bw, att = _case(rng, cell)
    got = _with_grads(_fused, x, lengths, fw, bw, att, cell)
    with implementation("tf"):
        want = _with_grads(_fused, x, lengths, fw, bw, att, cell)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("cell", ["GRU", "AGRU", "AUGRU"])
def test_float64_numerical_gradient(rng, cell):
    x, lengths, fw, bw, att = _case(rng, cell, b=5, t=4, e=2, u=3)
    inputs = [x, *fw, *bw] + ([att] if att is not None else [])
    check_sequence_and_final_gradients(
        lambda *t: _fused(t[0], lengths, t[1:5], t[5:9], t[9] if att is not None else None,
                          cell), inputs)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_16_bit_types_run_in_float32(rng, dtype):
    x, lengths, fw, bw, att = _case(rng, "AUGRU", np.float32)
    low = [tf.cast(v, dtype) for v in [x, *fw, *bw, att]]
    outputs, final = _fused(low[0], lengths, low[1:5], low[5:9], low[9], "AUGRU")
    assert outputs.dtype == dtype and final.dtype == dtype
    up = [tf.cast(v, tf.float32) for v in low]
    want, want_final = _fused(up[0], lengths, up[1:5], up[5:9], up[9], "AUGRU")
    np.testing.assert_array_equal(outputs.numpy(), tf.cast(want, dtype).numpy())
    np.testing.assert_array_equal(final.numpy(), tf.cast(want_final, dtype).numpy())


@pytest.mark.parametrize("cell", ["GRU", "AUGRU"])
def test_nan_and_inf_follow_the_twin(rng, cell):
    # NaN/Inf in padding never reach a result or a gradient; a NaN and an Inf in
    # valid steps propagate exactly as in the twin (two directions, concat).
    x, _, fw, bw, att = _case(rng, cell, np.float32, b=4, t=5)
    lengths = np.array([2, 5, 0, 3])
    x[0, 2:] = np.nan
    x[2] = np.inf
    x[1, 3, 0] = np.nan
    x[3, 1, 1] = np.inf
    if att is not None:
        att[0, 2:] = np.nan
        att[2] = np.inf
    got = _with_grads(_fused, x, lengths, fw, bw, att, cell)
    with implementation("tf"):
        want = _with_grads(_fused, x, lengths, fw, bw, att, cell)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    outputs, final, grad_x = got[0], got[1], got[2]
    assert np.all(np.isfinite(outputs[[0, 2]])) and np.all(np.isfinite(final[[0, 2]]))
    assert np.all(outputs[2] == 0) and np.all(grad_x[0, 2:] == 0) and np.all(grad_x[2] == 0)
    assert np.isnan(outputs[1]).any() and np.isnan(grad_x[1]).any()


def test_an_unused_output_gradient_goes_in_empty(rng):
    x, lengths, fw, bw, _ = _case(rng, "GRU")
    xt = tf.constant(x)

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(_fused(xt, lengths, fw, bw, None, "GRU")[1] ** 2)
        return tape.gradient(loss, xt)

    graph = grad.get_concrete_function().graph
    (bptt,) = [op for op in graph.get_operations()
               if op.type == "DeepCTR>BidirectionalDynamicGruGrad"]
    assert bptt.inputs[7].shape.as_list() == [0]
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(_two_ops(xt, lengths, fw, bw, None, "GRU")[1] ** 2)
    np.testing.assert_allclose(grad().numpy(), tape.gradient(loss, xt).numpy(), rtol=1e-12,
                               atol=1e-13)


@pytest.mark.parametrize("cell", ["GRU", "AUGRU"])
def test_a_graph_without_the_gradient_neither_saves_nor_needs_gates(rng, cell):
    # As for the one-direction op: gates (slot 2) only where a gradient reads them.
    x, lengths, fw, bw, att = _case(rng, cell, np.float32)
    (outputs, final), trained = gates_saved_only_for_a_gradient(
        lambda xt: _fused(xt, lengths, fw, bw, att, cell), x, "DeepCTR>BidirectionalDynamicGru")
    np.testing.assert_array_equal(outputs, trained[0])
    np.testing.assert_array_equal(final, trained[1])
    f_out, f_final = ref.forward(x, lengths, *fw, att=att, cell=cell)
    b_out, b_final = ref.forward(x, lengths, *bw, att=att, cell=cell, reverse=True)
    np.testing.assert_allclose(outputs, np.concatenate([f_out, b_out], -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final, np.concatenate([f_final, b_final], -1), rtol=1e-5,
                               atol=1e-6)


def test_weights_must_be_stacked_directions_and_errors_name_them(rng):
    x, lengths, fw, bw, _ = _case(rng, "GRU")
    op = _loader.load().DeepCTR_BidirectionalDynamicGru
    stacked = [np.stack([f, b]) for f, b in zip(fw, bw)]
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="wg"):
        op(x=x, lengths=lengths, att_scores=np.zeros([0]), wg=fw[0], bg=stacked[1],
           wc=stacked[2], bc=stacked[3])
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="bc"):
        op(x=x, lengths=lengths, att_scores=np.zeros([0]), wg=stacked[0], bg=stacked[1],
           wc=stacked[2], bc=np.stack([fw[3]] * 3))
    with pytest.raises(ValueError, match="wc"):
        bidirectional_dynamic_gru(x, lengths, fw, [bw[0], bw[1], bw[2][:-1], bw[3]])


def test_shape_inference():
    @tf.function(input_signature=[tf.TensorSpec([None, 7, 3], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def f(x, lengths):
        w = [tf.zeros([2, 8, 10]), tf.zeros([2, 10]), tf.zeros([2, 8, 5]), tf.zeros([2, 5])]
        result = _loader.load().DeepCTR_BidirectionalDynamicGru(
            x=x, lengths=lengths, att_scores=tf.zeros([0]), wg=w[0], bg=w[1], wc=w[2], bc=w[3])
        assert result.outputs.shape.as_list() == [None, 7, 10]
        assert result.final_state.shape.as_list() == [None, 10]
        assert result.gates.shape.as_list() == [2, None, 7, 15]
        return result.outputs

    assert f(tf.zeros([2, 7, 3]), tf.constant([3, 7])).shape == (2, 7, 10)


def test_second_order_gradient_raises_naming_the_op(rng):
    x, lengths, fw, bw, _ = _case(rng, "GRU")
    xt = tf.constant(x)
    with tf.GradientTape() as outer:
        outer.watch(xt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            loss = tf.reduce_sum(_fused(xt, lengths, fw, bw, None, "GRU")[0] ** 2)
        grad = tf.reduce_sum(inner.gradient(loss, xt))
    with pytest.raises(LookupError, match="DeepCTR>BidirectionalDynamicGruGrad"):
        outer.gradient(grad, xt)
