"""DeepCTR>AttentionSoftmax(+Grad) in float32 and float64: op vs pure-TF twin and
the float64 NumPy reference, float64 numerical gradients, dtype dispatch, shape
functions, bad inputs, and graphs written before the op had a `T` attr."""

from __future__ import annotations

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops import _loader
from deepctr_ops.ops.attention import attention_softmax
from helpers import value_and_input_grads
from kernels.attention_reference import forward as reference_forward

gen = _loader.load()


def _case(rng, heads=2, batch=3, tq=5, tk=7, dtype=np.float64):
    scores = rng.standard_normal((heads * batch, tq, tk)).astype(dtype)
    key_valid = rng.random((batch, tk)) < 0.6
    key_valid[0] = False  # a uniform sample
    key_valid[1] = False
    key_valid[1, 0] = True  # with blinding, its query 0 has no eligible key
    key_valid[2, :2] = True
    return scores, key_valid


def _op_types(fn, *args):
    graph = tf.function(fn).get_concrete_function(*args).graph
    return {op.type: op for op in graph.get_operations()}


@pytest.mark.parametrize("blinding", [False, True])
@pytest.mark.parametrize("divisor", [1.0, 2.828427])
def test_float64_numerical_gradient(rng, blinding, divisor):
    scores, key_valid = _case(rng)
    theoretical, numerical = tf.test.compute_gradient(
        lambda s: attention_softmax(s, key_valid, divisor, blinding), [tf.constant(scores)],
        delta=1e-6)
    assert theoretical[0].dtype == np.float64
    assert np.abs(theoretical[0] - numerical[0]).max() < 1e-8


@pytest.mark.parametrize("blinding", [False, True])
@pytest.mark.parametrize("divisor", [1.0, 2.828427])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 3, 9, 16), (3, 4, 1, 1), (2, 3, 33, 33)])
def test_float64_op_matches_twin(rng, blinding, divisor, shape):
    scores, key_valid = _case(rng, *shape)
    upstream = tf.constant(rng.standard_normal(scores.shape))
    results = {}
    for impl in ("op", "tf"):
        with deepctr_ops.implementation(impl):
            x = tf.constant(scores)
            with tf.GradientTape() as tape:
                tape.watch(x)
                probs = attention_softmax(x, key_valid, divisor, blinding)
                loss = tf.reduce_sum(probs * upstream)
            results[impl] = probs.numpy(), tape.gradient(loss, x).numpy()
    (p_op, g_op), (p_tf, g_tf) = results["op"], results["tf"]
    assert p_op.dtype == np.float64
    np.testing.assert_allclose(p_op, p_tf, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g_op, g_tf, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_float32_and_float64_use_the_custom_op(dtype):
    ops = _op_types(lambda s: attention_softmax(s, tf.ones((2, 4), tf.bool), 2.0),
                    tf.TensorSpec([None, 3, 4], dtype))
    assert ops["DeepCTR>AttentionSoftmax"].get_attr("T") == dtype


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_16_bit_types_use_the_twin(rng, dtype):
    scores, key_valid = _case(rng, dtype=np.float32)
    ops = _op_types(lambda s: attention_softmax(s, key_valid, 2.0, True),
                    tf.TensorSpec(scores.shape, dtype))
    assert not any(t.startswith("DeepCTR>") for t in ops)
    probs = attention_softmax(tf.cast(scores, dtype), key_valid, 2.0, True)
    assert probs.dtype == dtype
    np.testing.assert_allclose(tf.cast(probs[0], tf.float32), 1.0 / scores.shape[-1], atol=1e-3)
    expected = attention_softmax(scores, key_valid, 2.0, True)
    np.testing.assert_allclose(tf.cast(probs, tf.float32), expected, atol=1e-2)


def test_float64_gradient_op_dtype(rng):
    scores, key_valid = _case(rng)
    probs = gen.DeepCTR_AttentionSoftmax(scores=scores, key_valid=key_valid, blinding=True)
    grad = gen.DeepCTR_AttentionSoftmaxGrad(grad=tf.ones_like(probs), probs=probs,
                                            key_valid=key_valid, blinding=True)
    assert probs.dtype == tf.float64 and grad.dtype == tf.float64
    np.testing.assert_allclose(grad, 0.0, atol=1e-15)  # d sum(softmax) = 0


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_shape_functions(dtype):
    forward = tf.function(
        lambda s, v: gen.DeepCTR_AttentionSoftmax(scores=s, key_valid=v)).get_concrete_function(
        tf.TensorSpec([None, 5, None], dtype), tf.TensorSpec([None, 7], tf.bool))
    assert forward.structured_outputs.shape.as_list() == [None, 5, 7]
    backward = tf.function(
        lambda g, p, v: gen.DeepCTR_AttentionSoftmaxGrad(grad=g, probs=p, key_valid=v)
    ).get_concrete_function(tf.TensorSpec([6, None, None], dtype),
                            tf.TensorSpec([None, 5, None], dtype),
                            tf.TensorSpec([3, 7], tf.bool))
    assert backward.structured_outputs.shape.as_list() == [6, 5, 7]


@pytest.mark.parametrize("fn, specs, message", [
    (lambda s, v: gen.DeepCTR_AttentionSoftmax(scores=s, key_valid=v),
     (tf.TensorSpec([4, 3]), tf.TensorSpec([2, 3], tf.bool)),
     r"scores must be \[heads\*batch, Tq, Tk\]"),
    (lambda s, v: gen.DeepCTR_AttentionSoftmax(scores=s, key_valid=v),
     (tf.TensorSpec([4, 3, 3], tf.float64), tf.TensorSpec([2, 3, 1], tf.bool)),
     r"key_valid must be \[batch, Tk\]"),
    (lambda s, v: gen.DeepCTR_AttentionSoftmax(scores=s, key_valid=v),
     (tf.TensorSpec([4, 3, 3], tf.float64), tf.TensorSpec([2, 4], tf.bool)),
     "key_valid must be .* with the Tk of scores"),
    (lambda g, p, v: gen.DeepCTR_AttentionSoftmaxGrad(grad=g, probs=p, key_valid=v),
     (tf.TensorSpec([4, 3, 3]), tf.TensorSpec([4, 3, 2]), tf.TensorSpec([2, 3], tf.bool)),
     "probs must have the shape of grad"),
    (lambda s, v: gen.DeepCTR_AttentionSoftmax(scores=s, key_valid=v, heads=3),
     (tf.TensorSpec([4, 3, 3]), tf.TensorSpec([2, 3], tf.bool)),
     r"scores \[4,3,3\] must have heads \(3\) \* batch rows for key_valid \[2,3\]"),
    (lambda s, v: gen.DeepCTR_AttentionSoftmax(scores=s, key_valid=v),
     (tf.TensorSpec([5, 3, 3]), tf.TensorSpec([2, 3], tf.bool)),
     r"scores \[5,3,3\] must have heads \* batch rows for key_valid \[2,3\]"),
])
def test_shape_function_errors(fn, specs, message):
    with pytest.raises(ValueError, match=message):
        tf.function(fn).get_concrete_function(*specs)


def test_heads_must_match_rows_at_run_time():
    # Unknown static shapes: the kernel checks rows == heads * batch and names both shapes.
    fn = tf.function(lambda s, v: attention_softmax(s, v, heads=2), input_signature=[
        tf.TensorSpec([None, 3, 3]), tf.TensorSpec([None, 3], tf.bool)])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"scores.shape\[0\] \(6\) must be heads \(2\) \* "
                             r"key_valid.shape\[0\] \(2\)"):
        fn(tf.zeros([6, 3, 3]), tf.ones([2, 3], tf.bool))
    assert fn(tf.zeros([4, 3, 3]), tf.ones([2, 3], tf.bool)).shape == (4, 3, 3)
    with pytest.raises(ValueError, match=r"scores.shape\[0\] \(6\) must be heads \(2\)"):
        attention_softmax(tf.zeros([6, 3, 3]), tf.ones([2, 3], tf.bool), heads=2)
    with pytest.raises(ValueError, match="heads must be a positive int"):
        attention_softmax(tf.zeros([6, 3, 3]), tf.ones([2, 3], tf.bool), heads=0)


def test_dtype_outside_the_attr_is_rejected():
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError), match="T"):
        gen.DeepCTR_AttentionSoftmax(scores=tf.zeros((2, 3, 3), tf.float16),
                                     key_valid=tf.ones((2, 3), tf.bool))


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("scores_shape, valid_shape, message", [
    ([5, 3, 3], [2, 3], "multiple"),
    ([4, 3, 3], [2, 4], "key_valid"),
    ([4, 3, 3], [2, 3, 1], "key_valid"),
    ([4, 9], [2, 9], "rank 3"),
])
def test_kernel_rejects_bad_inputs(dtype, scores_shape, valid_shape, message):
    # Unknown static shapes, so the kernel (not the shape function) checks them.
    fn = tf.function(lambda s, v: gen.DeepCTR_AttentionSoftmax(scores=s, key_valid=v),
                     input_signature=[tf.TensorSpec(None, dtype), tf.TensorSpec(None, tf.bool)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        fn(tf.zeros(scores_shape, dtype), tf.ones(valid_shape, tf.bool))


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_grad_kernel_rejects_mismatched_probs_and_bad_divisor(dtype):
    fn = tf.function(
        lambda g, p, v: gen.DeepCTR_AttentionSoftmaxGrad(grad=g, probs=p, key_valid=v),
        input_signature=[tf.TensorSpec(None, dtype)] * 2 + [tf.TensorSpec(None, tf.bool)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="probs"):
        fn(tf.zeros((4, 3, 3), dtype), tf.zeros((4, 2, 3), dtype), tf.ones((2, 3), tf.bool))
    with pytest.raises(tf.errors.InvalidArgumentError, match="divisor"):
        gen.DeepCTR_AttentionSoftmax(scores=tf.zeros((2, 3, 3), dtype),
                                     key_valid=tf.ones((2, 3), tf.bool), divisor=0.0)


def test_wrapper_value_errors():
    with pytest.raises(ValueError, match="scores"):
        attention_softmax(tf.zeros((4, 3), tf.float64), tf.ones((2, 3), tf.bool))
    with pytest.raises(ValueError, match="key_valid"):
        attention_softmax(tf.zeros((4, 3, 3), tf.float64), tf.ones((2, 3, 1), tf.bool))


def test_graph_without_the_T_attr_still_runs(rng):
    # GraphDefs (and SavedModels) written by the float-only op have no `T`:
    # importing them fills in the default, float.
    scores, key_valid = _case(rng, dtype=np.float32)
    graph = tf.Graph()
    with graph.as_default():
        s = tf.constant(scores, name="scores")
        v = tf.constant(key_valid, name="key_valid")
        gen.DeepCTR_AttentionSoftmax(scores=s, key_valid=v, divisor=2.0, name="probs")
    graph_def = graph.as_graph_def()
    node = next(n for n in graph_def.node if n.op == "DeepCTR>AttentionSoftmax")
    del node.attr["T"]
    imported = tf.Graph()
    with imported.as_default():
        (probs,) = tf.graph_util.import_graph_def(graph_def, return_elements=["probs:0"])
        assert probs.op.get_attr("T") == tf.float32
        with tf.compat.v1.Session(graph=imported) as session:
            result = session.run(probs)
    np.testing.assert_allclose(result, attention_softmax(scores, key_valid, 2.0), rtol=1e-6)


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
    np.testing.assert_allclose(p_op, reference_forward(scores, key_valid, divisor, blinding),
                               rtol=1e-5, atol=1e-7)
    if batch > 1:
        np.testing.assert_array_equal(p_op[0], np.full((tq, tk), 1.0 / tk, np.float32))
        np.testing.assert_array_equal(g_op[0], 0.0)  # nothing flows to masked logits
    masked = ~np.tile(key_valid[:, None, :], (heads, tq, 1))
    assert np.all(g_op[masked] == 0)
