"""The DeepCTR>DynamicGru op through its Python wrapper: against the float64
NumPy reference, against its composite twin (outputs and gradients, also under
XLA), float64 numerical gradients, 16-bit dtypes, shapes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops import _loader, implementation
from deepctr_ops.ops import dynamic_gru
from helpers import check_sequence_and_final_gradients, gates_saved_only_for_a_gradient
from kernels import gru_reference as ref

CELLS = ["GRU", "AIGRU", "AGRU", "AUGRU"]


def _case(rng, cell, dtype=np.float64, b=7, t=5, e=3, u=4):
    x, lengths, w, att = ref.random_case(rng, b, t, e, u, cell, dtype)
    return x, lengths, [w["wg"], w["bg"], w["wc"], w["bc"]], att


def _run(x, lengths, weights, att, cell, reverse=False):
    return dynamic_gru(x, lengths, *weights, att_scores=att, cell=cell, reverse=reverse)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_matches_reference(rng, cell, reverse, dtype):
    x, lengths, weights, att = _case(rng, cell, dtype, b=40, t=6, e=5, u=9)
    outputs, final = _run(x, lengths.reshape(-1, 1), weights, att, cell, reverse)
    want_out, want_final = ref.forward(x, lengths, *weights, att=att, cell=cell, reverse=reverse)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    assert outputs.dtype == dtype
    np.testing.assert_allclose(outputs.numpy(), want_out, **tol)
    np.testing.assert_allclose(final.numpy(), want_final, **tol)


@pytest.mark.parametrize("lengths", [np.array([2, 0, 9, 5], np.int32),
                                     np.array([[2], [0], [9], [5]], np.int64),
                                     np.array([[2.7], [0.2], [9.0], [5.9]], np.float32)])
def test_length_types_and_shapes(rng, lengths):
    x, _, weights, _ = _case(rng, "GRU", b=4, t=6)
    outputs, final = _run(x, lengths, weights, None, "GRU")
    want_out, want_final = ref.forward(x, np.trunc(lengths).astype(np.int64), *weights)
    np.testing.assert_allclose(outputs.numpy(), want_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(final.numpy(), want_final, rtol=1e-12, atol=1e-13)


def _grads(fn, x, weights, att):
    tensors = [tf.constant(v) for v in [x, *weights] + ([att] if att is not None else [])]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs, final = fn(tensors[0], tensors[1:5], tensors[5] if att is not None else None)
        up_o = tf.constant(np.random.default_rng(3).standard_normal(outputs.shape), x.dtype)
        up_f = tf.constant(np.random.default_rng(4).standard_normal(final.shape), x.dtype)
        loss = tf.reduce_sum(outputs * up_o) + tf.reduce_sum(final * up_f)
    return [outputs.numpy(), final.numpy()] + [g.numpy() for g in tape.gradient(loss, tensors)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_op_matches_twin_with_gradients(rng, cell, reverse):
    x, lengths, weights, att = _case(rng, cell, b=37, t=6)

    def fn(xt, ws, at):
        return _run(xt, lengths, ws, at, cell, reverse)

    got = _grads(fn, x, weights, att)
    with implementation("tf"):
        want = _grads(fn, x, weights, att)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("cell", ["GRU", "AUGRU"])
def test_xla_uses_the_twin_with_the_same_numbers(rng, cell):
    x, lengths, weights, att = _case(rng, cell, np.float32)
    args = [x, lengths, weights, att, cell, True]
    xla = tf.function(lambda: _run(*args), jit_compile=True)()
    eager = _run(*args)
    for a, b in zip(xla, eager):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["GRU", "AGRU", "AUGRU"])
@pytest.mark.parametrize("reverse", [False, True])
def test_float64_numerical_gradient(rng, cell, reverse):
    x, lengths, weights, att = _case(rng, cell, b=5, t=4, e=2, u=3)
    lengths[:4] = [0, 1, 4, 6]
    inputs = [x, *weights] + ([att] if att is not None else [])
    check_sequence_and_final_gradients(
        lambda *t: _run(t[0], lengths, t[1:5], t[5] if att is not None else None, cell,
                        reverse), inputs)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_16_bit_types_run_in_float32(rng, dtype):
    x, lengths, weights, att = _case(rng, "AUGRU", np.float32)
    low = [tf.cast(v, dtype) for v in [x, *weights, att]]
    outputs, final = _run(low[0], lengths, low[1:5], low[5], "AUGRU")
    assert outputs.dtype == dtype and final.dtype == dtype
    up = [tf.cast(v, tf.float32) for v in low]
    want, want_final = _run(up[0], lengths, up[1:5], up[5], "AUGRU")
    np.testing.assert_array_equal(outputs.numpy(), tf.cast(want, dtype).numpy())
    np.testing.assert_array_equal(final.numpy(), tf.cast(want_final, dtype).numpy())
    with tf.GradientTape() as tape:
        tape.watch(low[0])
        loss = tf.reduce_sum(_run(low[0], lengths, low[1:5], low[5], "AUGRU")[0])
    assert tape.gradient(loss, low[0]).dtype == dtype


def test_gradient_of_the_final_state_alone_and_of_outputs_alone(rng):
    x, lengths, weights, _ = _case(rng, "GRU")
    xt = tf.constant(x)
    for pick in (0, 1):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(_run(xt, lengths, weights, None, "GRU")[pick] ** 2)
        got = tape.gradient(loss, xt)
        with implementation("tf"), tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(_run(xt, lengths, weights, None, "GRU")[pick] ** 2)
        np.testing.assert_allclose(got.numpy(), tape.gradient(loss, xt).numpy(), rtol=1e-11,
                                   atol=1e-12)


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("cell", ["GRU", "AUGRU"])
def test_nan_in_padding_never_reaches_outputs_or_gradients(rng, impl, cell):
    x, _, weights, att = _case(rng, cell, np.float32, b=3, t=5)
    lengths = np.array([2, 5, 0])
    x[0, 2:] = np.nan
    x[2] = np.nan
    if att is not None:
        att[0, 2:] = np.nan
        att[2] = np.nan
    tensors = [tf.constant(v) for v in [x, *weights] + ([att] if att is not None else [])]
    with implementation(impl), tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs, final = _run(tensors[0], lengths, tensors[1:5],
                              tensors[5] if att is not None else None, cell)
        loss = tf.reduce_sum(outputs) + tf.reduce_sum(final)
    grads = tape.gradient(loss, tensors)
    assert np.all(np.isfinite(outputs.numpy())) and np.all(np.isfinite(final.numpy()))
    for g in grads:
        assert np.all(np.isfinite(g.numpy()))
    assert np.all(grads[0].numpy()[0, 2:] == 0) and np.all(grads[0].numpy()[2] == 0)


@pytest.mark.parametrize("pick", [0, 1])
def test_unused_output_gradient_goes_in_empty_inside_tf_function(rng, pick):
    # return_sequence=False uses only the final state: its BPTT must get
    # grad_outputs [0] (zero), not a [B, T, U] tensor of zeros, and the same
    # numbers as the twin.
    x, lengths, weights, _ = _case(rng, "GRU", b=40)
    xt = tf.constant(x)

    def grad():
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(_run(xt, lengths, weights, None, "GRU")[pick] ** 2)
        return tape.gradient(loss, xt)

    fn = tf.function(grad)
    graph = fn.get_concrete_function().graph
    (bptt,) = [op for op in graph.get_operations() if op.type == "DeepCTR>DynamicGruGrad"]
    unused = bptt.inputs[8 if pick == 0 else 7]  # grad_final_state / grad_outputs
    assert unused.shape.as_list() == [0]
    with implementation("tf"):
        want = grad()
    np.testing.assert_allclose(fn().numpy(), want.numpy(), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("cell", ["GRU", "AUGRU"])
@pytest.mark.parametrize("reverse", [False, True])
def test_a_graph_without_the_gradient_neither_saves_nor_needs_gates(rng, cell, reverse):
    # Serving / predict: nothing consumes the gates output, so the executor
    # marks it not required and the kernel skips it (slot 2 is never set). A
    # graph with the gradient saves it. Outputs are the same bits either way.
    x, lengths, weights, att = _case(rng, cell, np.float32, b=40, t=6, e=5, u=9)
    (outputs, final), trained = gates_saved_only_for_a_gradient(
        lambda xt: _run(xt, lengths, weights, att, cell, reverse), x, "DeepCTR>DynamicGru")
    np.testing.assert_array_equal(outputs, trained[0])
    np.testing.assert_array_equal(final, trained[1])
    want_out, want_final = ref.forward(x, lengths, *weights, att=att, cell=cell, reverse=reverse)
    np.testing.assert_allclose(outputs, want_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final, want_final, rtol=1e-5, atol=1e-6)


def test_grad_op_takes_an_empty_incoming_gradient_as_zero(rng):
    x, lengths, weights, _ = _case(rng, "GRU")
    ops = _loader.load()
    outputs, final, gates = ops.DeepCTR_DynamicGru(
        x=x, lengths=lengths, att_scores=np.zeros([0]), wg=weights[0], bg=weights[1],
        wc=weights[2], bc=weights[3])

    def bptt(grad_outputs, grad_final):
        return ops.DeepCTR_DynamicGruGrad(
            x=x, lengths=lengths, att_scores=np.zeros([0]), wg=weights[0], wc=weights[2],
            outputs=outputs, gates=gates, grad_outputs=grad_outputs, grad_final_state=grad_final)

    go = rng.standard_normal(outputs.shape)
    for got, want in zip(bptt(np.zeros([0]), go[:, 0]), bptt(np.zeros_like(go), go[:, 0])):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for got, want in zip(bptt(go, np.zeros([0])), bptt(go, np.zeros_like(go[:, 0]))):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="grad_outputs"):
        bptt(np.zeros([3]), go[:, 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="grad_final_state"):
        bptt(go, np.zeros([2]))


def test_second_order_gradient_raises_naming_the_op(rng):
    x, lengths, weights, _ = _case(rng, "GRU")
    xt = tf.constant(x)
    with tf.GradientTape() as outer:
        outer.watch(xt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            loss = tf.reduce_sum(_run(xt, lengths, weights, None, "GRU")[0] ** 2)
        grad = tf.reduce_sum(inner.gradient(loss, xt))
    with pytest.raises(LookupError, match="DeepCTR>DynamicGruGrad"):
        outer.gradient(grad, xt)


def test_shape_inference():
    @tf.function(input_signature=[tf.TensorSpec([None, 7, 3], tf.float32),
                                  tf.TensorSpec([None, 1], tf.int32),
                                  tf.TensorSpec([None, None], tf.float32)])
    def f(x, lengths, att):
        w = [tf.zeros([8, 10]), tf.zeros([10]), tf.zeros([8, 5]), tf.zeros([5])]
        result = _loader.load().DeepCTR_DynamicGru(x=x, lengths=lengths, att_scores=att, wg=w[0],
                                                   bg=w[1], wc=w[2], bc=w[3], cell="AGRU")
        assert result.outputs.shape.as_list() == [None, 7, 5]
        assert result.final_state.shape.as_list() == [None, 5]
        assert result.gates.shape.as_list() == [None, 7, 15]
        return result.outputs

    f.get_concrete_function()


X = np.ones((2, 3, 4), np.float32)
W = [np.zeros((6, 4), np.float32), np.zeros(4, np.float32), np.zeros((6, 2), np.float32),
     np.zeros(2, np.float32)]
ATT = np.ones((2, 3, 1), np.float32)


@pytest.mark.parametrize("kwargs, match", [
    (dict(att_scores=ATT, cell="GRU"), "att_scores must be None"),
    (dict(att_scores=ATT, cell="AIGRU"), "att_scores must be None"),
    (dict(att_scores=None, cell="AGRU"), "att_scores .* required"),
    (dict(att_scores=None, cell="AUGRU"), "att_scores .* required"),
    (dict(att_scores=np.ones((2, 4, 1), np.float32), cell="AGRU"), "att_scores must have shape"),
    (dict(att_scores=np.ones((3, 3, 1), np.float32), cell="AUGRU"), "att_scores must have shape"),
    (dict(att_scores=np.ones((2, 3, 2), np.float32), cell="AUGRU"), "att_scores must have shape"),
    (dict(cell="LSTM"), "gru_type"),
])
def test_bad_arguments_are_value_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dynamic_gru(X, [1, 2], *W, **kwargs)


@pytest.mark.parametrize("index, bad, match", [
    (0, np.zeros((5, 4), np.float32), "wg"),
    (0, np.zeros((6, 6), np.float32), "wg"),
    (1, np.zeros(3, np.float32), "bg"),
    (2, np.zeros((7, 2), np.float32), "wc"),
    (3, np.zeros(3, np.float32), "bc"),
])
def test_weight_shapes_must_match_e_and_units(index, bad, match):
    weights = list(W)
    weights[index] = bad
    with pytest.raises(ValueError, match=match):
        dynamic_gru(X, [1, 2], *weights)


def test_bad_shapes_inside_a_graph_are_invalid_arguments_naming_them():
    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)] * 3)
    def f(x, att, wg):
        return _loader.load().DeepCTR_DynamicGru(
            x=x, lengths=tf.constant([1, 2]), att_scores=att, wg=wg, bg=W[1], wc=W[2], bc=W[3],
            cell="AUGRU").outputs

    with pytest.raises(tf.errors.InvalidArgumentError, match="att_scores"):
        f(X, np.ones((2, 4), np.float32), W[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="wg"):
        f(X, ATT, np.zeros((6, 5), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="lengths"):
        _loader.load().DeepCTR_DynamicGru(x=X, lengths=[1, 2, 3],
                                          att_scores=np.zeros([0], np.float32), wg=W[0],
                                          bg=W[1], wc=W[2], bc=W[3])
