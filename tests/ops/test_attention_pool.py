"""DeepCTR>AttentionPool(+Grad): op vs composite twin (DeepCTR's graph) and the
float64 NumPy statement, float64 numerical gradients, lengths/mask layouts,
16-bit dtypes, NaN containment, shape functions, bad inputs, second order and
the XLA fallback."""

from __future__ import annotations

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops import _loader
from deepctr_ops.ops.attention_pool import attention_pool
from kernels.attention_pool_reference import forward as reference_forward

gen = _loader.load()
COMBOS = [(False, False), (True, False), (False, True), (True, True)]


def _case(rng, b=6, t=5, e=4, units=(7, 3), dtype=np.float64):
    query = rng.standard_normal((b, 1, e)).astype(dtype)
    keys = rng.standard_normal((b, t, e)).astype(dtype)
    lengths = np.array([0, 1, t, t + 2, -1, 3][:b] + [2] * max(0, b - 6), np.int64)[:, None]
    mask = rng.random((b, t)) < 0.5
    mask[0] = False
    dims = [4 * e, *units, 1]
    kernels = [(rng.standard_normal((dims[i], dims[i + 1])) / np.sqrt(dims[i])).astype(dtype)
               for i in range(len(dims) - 1)]
    biases = [(rng.standard_normal(dims[i + 1]) * 0.1).astype(dtype)
              for i in range(len(dims) - 1)]
    return query, keys, lengths, mask, kernels, biases


def _run(impl, query, keys, kernels, biases, upstream_seed=3, **kwargs):
    """Output and gradients (query, keys, kernels, biases) of sum(out * upstream)."""
    with deepctr_ops.implementation(impl):
        q, k = tf.constant(query), tf.constant(keys)
        ws = [tf.constant(w) for w in kernels + biases]
        with tf.GradientTape() as tape:
            tape.watch([q, k] + ws)
            out = attention_pool(q, k, ws[:len(kernels)], ws[len(kernels):], **kwargs)
            upstream = np.random.default_rng(upstream_seed).standard_normal(out.shape)
            loss = tf.reduce_sum(out * tf.constant(upstream, out.dtype))
        grads = tape.gradient(loss, [q, k] + ws)
    return [out.numpy()] + [g.numpy() for g in grads]


@pytest.mark.parametrize("normalize,return_score", COMBOS)
@pytest.mark.parametrize("layout", ["lengths", "mask"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_matches_twin(rng, normalize, return_score, layout, dtype):
    q, k, lengths, mask, ws, bs = _case(rng, dtype=dtype)
    rows = dict(lengths=lengths) if layout == "lengths" else dict(mask=mask)
    kw = dict(weight_normalization=normalize, return_score=return_score, **rows)
    ours = _run("op", q, k, ws, bs, **kw)
    twin = _run("tf", q, k, ws, bs, **kw)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    for a, b in zip(ours, twin):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_allclose(
        ours[0], reference_forward(q, k, lengths[:, 0] if layout == "lengths" else mask, ws, bs,
                                   "sigmoid", normalize, return_score), **tol)


@pytest.mark.parametrize("units", [(80, 40), (64, 16), ()])
@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh", "linear", None])
def test_activations_and_units_match_twin(rng, units, activation):
    q, k, lengths, _, ws, bs = _case(rng, units=units)
    kw = dict(lengths=lengths, activation=activation, weight_normalization=True)
    for a, b in zip(_run("op", q, k, ws, bs, **kw), _run("tf", q, k, ws, bs, **kw)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalize,return_score", COMBOS)
def test_float64_numerical_gradient(rng, normalize, return_score):
    q, k, lengths, _, ws, bs = _case(rng, b=4, t=4, e=3, units=(5,))

    def f(query, keys, *weights):
        return attention_pool(query, keys, list(weights[:2]), list(weights[2:]), lengths=lengths,
                              weight_normalization=normalize, return_score=return_score)

    theoretical, numerical = tf.test.compute_gradient(
        f, [tf.constant(x) for x in [q, k] + ws + bs], delta=1e-6)
    for t, n in zip(theoretical, numerical):
        assert np.abs(t - n).max() < 1e-7


def test_lengths_are_clamped_and_float_lengths_truncate(rng):
    q, k, _, _, ws, bs = _case(rng, b=4, t=5)
    lengths = np.array([[-3], [0], [9], [2]], np.int32)
    clamped = np.clip(lengths, 0, 5)
    for normalize in (False, True):
        a = attention_pool(q, k, ws, bs, lengths=lengths, weight_normalization=normalize)
        b = attention_pool(q, k, ws, bs, lengths=clamped, weight_normalization=normalize)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        c = attention_pool(q, k, ws, bs, lengths=clamped.astype(np.float32) + 0.7,
                           weight_normalization=normalize)
        np.testing.assert_array_equal(c.numpy(), b.numpy())


def test_mask_of_a_prefix_equals_lengths(rng):
    q, k, _, _, ws, bs = _case(rng, b=4, t=5)
    lengths = np.array([0, 2, 5, 3])
    mask = np.arange(5)[None, :] < lengths[:, None]
    for normalize, return_score in COMBOS:
        kw = dict(weight_normalization=normalize, return_score=return_score)
        a = _run("op", q, k, ws, bs, lengths=lengths, **kw)
        b = _run("op", q, k, ws, bs, mask=mask, **kw)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_16_bit_inputs_run_in_float32(rng, dtype):
    q, k, lengths, _, ws, bs = _case(rng, dtype=np.float32)
    cast = [tf.cast(x, dtype) for x in [q, k] + ws + bs]
    out = attention_pool(cast[0], cast[1], cast[2:5], cast[5:], lengths=lengths,
                         weight_normalization=True)
    assert out.dtype == dtype
    widened = [tf.cast(x, tf.float32) for x in cast]
    expected = attention_pool(widened[0], widened[1], widened[2:5], widened[5:], lengths=lengths,
                              weight_normalization=True)
    np.testing.assert_array_equal(out.numpy(), tf.cast(expected, dtype).numpy())


@pytest.mark.parametrize("normalize,return_score", COMBOS)
def test_nan_padding_does_not_leak_and_valid_nan_matches_twin(rng, normalize, return_score):
    q, k, lengths, _, ws, bs = _case(rng, dtype=np.float32)
    kw = dict(lengths=lengths, weight_normalization=normalize, return_score=return_score)
    clean = _run("op", q, k, ws, bs, **kw)
    poisoned = k.copy()
    for b, n in enumerate(np.clip(lengths[:, 0], 0, k.shape[1])):
        if n > 0:  # rows without a valid step read their padding (the uniform mean)
            poisoned[b, n:] = np.nan
    for a, b in zip(clean, _run("op", q, poisoned, ws, bs, **kw)):
        np.testing.assert_array_equal(b, a)
    k_nan = k.copy()
    k_nan[2, 1, 0] = np.nan  # row 2 has all T steps valid
    ours = _run("op", q, k_nan, ws, bs, **kw)
    twin = _run("tf", q, k_nan, ws, bs, **kw)
    # NaN wherever TF has it, in row 2 only. (TF's oneDNN softmax leaves the
    # other steps of a row with a NaN score at 0; the op makes the row NaN.)
    assert np.isnan(ours[0][np.isnan(twin[0])]).all()
    assert np.isnan(ours[0][2]).any() and not np.isnan(np.delete(ours[0], 2, axis=0)).any()
    np.testing.assert_allclose(np.delete(ours[0], 2, axis=0), np.delete(twin[0], 2, axis=0),
                               rtol=1e-5, atol=1e-6)


def test_second_order_gradient_raises_naming_the_op(rng):
    q, k, lengths, _, ws, bs = _case(rng)
    x = tf.constant(k)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            loss = tf.reduce_sum(attention_pool(q, x, ws, bs, lengths=lengths) ** 2)
        g = inner.gradient(loss, x)
    with pytest.raises(LookupError, match="DeepCTR>AttentionPoolGrad"):
        outer.gradient(g, x)


def test_xla_uses_the_twin(rng):
    q, k, lengths, _, ws, bs = _case(rng, dtype=np.float32)

    @tf.function(jit_compile=True)
    def f(query, keys):
        return attention_pool(query, keys, ws, bs, lengths=lengths, weight_normalization=True)

    np.testing.assert_allclose(
        f(q, k).numpy(),
        attention_pool(q, k, ws, bs, lengths=lengths, weight_normalization=True).numpy(),
        rtol=1e-5, atol=1e-6)
    graph = tf.function(f.python_function).get_concrete_function(q, k).graph
    assert "DeepCTR>AttentionPool" in {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("return_score", [False, True])
@pytest.mark.parametrize("rows_spec", [tf.TensorSpec([None, 1], tf.int32),
                                       tf.TensorSpec([None], tf.int64),
                                       tf.TensorSpec([None, None], tf.bool)])
def test_shape_function_merges_dimensions(return_score, rows_spec):
    def f(query, keys, rows, k0, k1, b0, b1):
        return gen.DeepCTR_AttentionPool(query=query, keys=keys, rows=rows, kernels=[k0, k1],
                                         biases=[b0, b1], return_score=return_score)

    specs = [tf.TensorSpec([None, 1, None]), tf.TensorSpec([None, 7, None]), rows_spec,
             tf.TensorSpec([12, 5]), tf.TensorSpec([None, 1]), tf.TensorSpec([5]),
             tf.TensorSpec([None])]
    out = tf.function(f).get_concrete_function(*specs).outputs[0]
    assert out.shape.as_list() == [None, 1, 7 if return_score else 3]


def _raw(q, k, rows, ws, bs, **kw):
    return gen.DeepCTR_AttentionPool(query=q, keys=k, rows=rows, kernels=ws, biases=bs, **kw)


@pytest.mark.parametrize("change,message", [
    (lambda a: dict(q=a["q"][:, :, :3]), "embedding"),
    (lambda a: dict(q=np.concatenate([a["q"]] * 2, axis=1)), "query"),
    (lambda a: dict(q=a["q"][:3]), "batch"),
    (lambda a: dict(k=a["k"][0]), "keys"),
    (lambda a: dict(rows=np.ones((6, 2), np.int32)), "lengths"),
    (lambda a: dict(rows=np.ones((6, 4), bool)), "mask"),
    (lambda a: dict(ws=[a["ws"][0][:-1]] + a["ws"][1:]), "kernel0"),
    (lambda a: dict(ws=[a["ws"][0], a["ws"][1][:-1], a["ws"][2]]), "kernel1"),
    (lambda a: dict(bs=[a["bs"][0][:-1]] + a["bs"][1:]), "bias0"),
    (lambda a: dict(ws=a["ws"][:2] + [np.ones((3, 2))], bs=a["bs"][:2] + [np.ones(2)]),
     "kernel"),
])
@pytest.mark.parametrize("mode", ["eager", "graph", "wrapper"])
def test_bad_inputs_name_the_argument(rng, change, message, mode):
    q, k, lengths, _, ws, bs = _case(rng)
    args = dict(q=q, k=k, rows=lengths.astype(np.int32), ws=ws, bs=bs)
    args.update(change(args))
    errors = (ValueError, tf.errors.InvalidArgumentError)
    with pytest.raises(errors, match=message):
        if mode == "eager":
            _raw(args["q"], args["k"], args["rows"], args["ws"], args["bs"])
        elif mode == "graph":
            tf.function(_raw).get_concrete_function(
                args["q"], args["k"], args["rows"], args["ws"], args["bs"])
        else:
            rows = args["rows"]
            kw = dict(mask=rows) if rows.dtype == bool else dict(lengths=rows)
            attention_pool(args["q"], args["k"], args["ws"], args["bs"], **kw)


def test_wrapper_needs_exactly_one_of_lengths_and_mask(rng):
    q, k, lengths, mask, ws, bs = _case(rng)
    with pytest.raises(ValueError, match="exactly one of lengths and mask"):
        attention_pool(q, k, ws, bs)
    with pytest.raises(ValueError, match="exactly one of lengths and mask"):
        attention_pool(q, k, ws, bs, lengths=lengths, mask=mask)


@pytest.mark.parametrize("normalize,return_score", COMBOS)
def test_gradient_from_saved_activations_equals_recomputed(rng, normalize, return_score):
    q, k, lengths, _, ws, bs = _case(rng, dtype=np.float32)
    kw = dict(weight_normalization=normalize, return_score=return_score)
    rows = lengths.astype(np.int32)
    fwd = gen.DeepCTR_AttentionPool(query=q, keys=k, rows=rows, kernels=ws, biases=bs, **kw)
    assert fwd.activations.shape.rank == 1 and fwd.activations.shape[0] > 0
    grad = rng.standard_normal(fwd.output.shape).astype(np.float32)
    saved = gen.DeepCTR_AttentionPoolGrad(query=q, keys=k, rows=rows, kernels=ws, biases=bs,
                                          activations=fwd.activations, grad=grad, **kw)
    recomputed = gen.DeepCTR_AttentionPoolGrad(query=q, keys=k, rows=rows, kernels=ws,
                                               biases=bs, activations=np.zeros(0, np.float32),
                                               grad=grad, **kw)
    for a, b in zip(tf.nest.flatten(saved), tf.nest.flatten(recomputed)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="activations"):
        gen.DeepCTR_AttentionPoolGrad(query=q, keys=k, rows=rows, kernels=ws, biases=bs,
                                      activations=np.zeros(3, np.float32), grad=grad, **kw)
