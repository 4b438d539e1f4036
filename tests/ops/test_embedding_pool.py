"""DeepCTR>EmbeddingSequencePool (+Masked, Ragged) and their gradient ops.

The oracle is DeepCTR's own math on a dense [B,T,E] lookup, in float64 TF ops
written here (Keras `Embedding` gather, `WeightedSequenceLayer`'s weighting,
`SequencePoolingLayer`'s masked sum / mean / `x - (1 - m) * 1e9` max), and
its tape gradient densified. Layer-level parity with DeepCTR's classes is in
tests/layers/test_embedding_sequence_pooling.py.
"""

from __future__ import annotations

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.ops import embedding_sequence_pool

V, E, B, T = 40, 6, 7, 5
NEG = -(2.0**32) + 1

# Lengths cover < 0, 0, 1, T and > T.
LENGTHS = np.array([0, 1, 3, T, T + 2, -1, 2])


def _ids(rng, zero_padding_after=None):
    ids = rng.integers(1, V, size=(B, T))
    ids[2, 1] = 0  # An id 0 inside the length: valid unless mask_zero.
    ids[4, :] = 0  # A row of zeros: no valid step with mask_zero.
    ids[6, 0] = ids[6, 1]  # A duplicate id within a row.
    if zero_padding_after is not None:
        ids[np.arange(T)[None, :] >= np.clip(zero_padding_after, 0, T)[:, None]] = 0
    return ids


def _valid(ids, layout, mask, mask_zero):
    if layout in ("lengths", "lengths_column", "float_lengths"):
        valid = np.arange(T)[None, :] < np.clip(LENGTHS, 0, T)[:, None]
    elif layout == "mask":
        valid = mask.copy()
    else:
        valid = np.ones_like(ids, bool)
    if mask_zero:
        valid &= ids != 0
    return valid


def _reference(table, ids, valid, divisor, weights, normalize, mode):
    """DeepCTR's dense math in float64: (pooled [B,1,E], dense table gradient)."""
    table = tf.constant(table, tf.float64)
    m = tf.constant(valid)
    mf = tf.cast(m, tf.float64)[:, :, None]
    with tf.GradientTape() as tape:
        tape.watch(table)
        x = tf.gather(table, ids)  # Keras Embedding: every step, padding included.
        if weights is not None:
            w = tf.constant(weights, tf.float64)[:, :, None]
            if normalize:
                w = tf.nn.softmax(tf.where(m[:, :, None], w, NEG), axis=1)
            else:
                w = tf.where(m[:, :, None], w, 0.0)
            x = x * w
        if mode == "max":
            out = tf.reduce_max(x - (1 - mf) * 1e9, axis=1, keepdims=True)
        else:
            out = tf.reduce_sum(x * mf, axis=1, keepdims=True)
            if mode == "mean":
                out = out / (tf.constant(divisor, tf.float64)[:, None, None] + 1e-8)
        loss = tf.reduce_sum(out * _upstream(out.shape))
    return out.numpy(), tf.convert_to_tensor(tape.gradient(loss, table)).numpy()


def _upstream(shape):
    return tf.constant(np.linspace(-1.0, 2.0, int(np.prod(shape))).reshape(shape))


def _run(table, ids, mode, dtype=tf.float64, variable=True, **kwargs):
    """(pooled, table gradient as it comes, weights gradient) of the wrapper."""
    t = tf.Variable(tf.constant(table, dtype)) if variable else tf.constant(table, dtype)
    weights = kwargs.pop("weights", None)
    w = None if weights is None else tf.constant(weights, dtype)
    with tf.GradientTape(persistent=True) as tape:
        if not variable:
            tape.watch(t)
        if w is not None:
            tape.watch(w)
        out = embedding_sequence_pool(t, ids, weights=w, mode=mode, **kwargs)
        loss = tf.reduce_sum(out * tf.cast(_upstream(out.shape), dtype))
    grad = tape.gradient(loss, t)
    grad_w = None if w is None else tape.gradient(loss, w)
    return out, grad, grad_w


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("layout", ["lengths", "lengths_column", "float_lengths", "mask", "none"])
@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("weighting", [None, "raw", "normalized"])
@pytest.mark.parametrize("impl", ["op", "tf"])
def test_dense_matches_deepctr_math(rng, mode, layout, mask_zero, weighting, impl):
    deepctr_ops.set_implementation(impl)
    table = rng.standard_normal((V, E))
    ids = _ids(rng)
    mask = rng.random((B, T)) < 0.6
    mask[3] = False  # An all-False row.
    kwargs = {"mask_zero": mask_zero}
    if layout == "lengths":
        kwargs["lengths"] = LENGTHS
    elif layout == "lengths_column":
        kwargs["lengths"] = LENGTHS[:, None].astype(np.int64)
    elif layout == "float_lengths":
        kwargs["lengths"] = LENGTHS.astype(np.float32) + 0.5
    elif layout == "mask":
        kwargs["mask"] = mask
    weights = None
    if weighting is not None:
        weights = rng.uniform(0.1, 2.0, size=(B, T))
        kwargs["weights"] = weights
        kwargs["weight_normalization"] = weighting == "normalized"
    valid = _valid(ids, layout, mask, mask_zero)
    if layout in ("lengths", "lengths_column") and not mask_zero:
        divisor = LENGTHS.astype(np.float64)
    elif layout == "float_lengths" and not mask_zero:
        divisor = LENGTHS + 0.5
    else:
        divisor = valid.sum(axis=1).astype(np.float64)
    want, want_grad = _reference(table, ids, valid, divisor, weights,
                                 weighting == "normalized", mode)
    out, grad, _ = _run(table, ids, mode, **kwargs)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tf.convert_to_tensor(grad).numpy(), want_grad, rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("impl", ["op", "tf"])
def test_ragged_matches_dense_of_its_rows(rng, mode, mask_zero, impl):
    """A ragged row pools like its own steps; with mask_zero its id-0 steps are
    dropped, and a row left empty pools like an empty ragged row (-1e9 max)."""
    deepctr_ops.set_implementation(impl)
    table = rng.standard_normal((V, E))
    rows = [[3, 0, 7], [], [0, 0], [5], [9, 9, 1, 2], [0]]
    weights = [[0.5, 2.0, 1.5], [], [1.0, 3.0], [0.25], [1.0, 2.0, 0.5, 4.0], [2.0]]
    ids = tf.ragged.constant(rows, dtype=tf.int64)
    w = tf.ragged.constant(weights, dtype=tf.float64)
    t = tf.Variable(table)
    with tf.GradientTape() as tape:
        out = embedding_sequence_pool(t, ids, weights=w, mode=mode, mask_zero=mask_zero)
        loss = tf.reduce_sum(out * _upstream(out.shape))
    grad = tf.convert_to_tensor(tape.gradient(loss, t)).numpy()
    up = _upstream(out.shape).numpy()
    want = np.zeros((len(rows), 1, E))
    want_grad = np.zeros_like(table)
    for b, (r, wr) in enumerate(zip(rows, weights)):
        kept = [(i, wi) for i, wi in zip(r, wr) if not (mask_zero and i == 0)]
        if not kept:
            want[b, 0] = -1e9 if mode == "max" else 0.0
            continue
        x = np.stack([table[i] * wi for i, wi in kept])
        if mode == "max":
            want[b, 0] = x.max(axis=0)
            for (i, wi), xi in zip(kept, x):
                want_grad[i] += (xi == want[b, 0]) * up[b, 0] * wi
        else:
            div = len(kept) + 1e-8 if mode == "mean" else 1.0
            want[b, 0] = x.sum(axis=0) / div
            for i, wi in kept:
                want_grad[i] += up[b, 0] / div * wi
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("layout", ["lengths", "mask", "ragged"])
def test_table_gradient_is_indexed_slices_over_the_pooled_steps(rng, mode, layout):
    table = rng.standard_normal((V, E))
    ids = _ids(rng, zero_padding_after=LENGTHS)
    if layout == "ragged":
        ids_in = tf.RaggedTensor.from_tensor(ids, lengths=np.clip(LENGTHS, 0, T))
        kwargs = {}
    elif layout == "mask":
        ids_in, kwargs = ids, {"mask_zero": True}
    else:
        ids_in, kwargs = ids, {"lengths": LENGTHS}
    _, grad, _ = _run(table, ids_in, mode, **kwargs)
    assert isinstance(grad, tf.IndexedSlices)
    assert grad.dense_shape.numpy().tolist() == [V, E]
    valid = np.arange(T)[None, :] < np.clip(LENGTHS, 0, T)[:, None]
    if layout == "mask":
        valid &= ids != 0
    if mode == "max":
        # A dense row with no valid step spreads its max gradient over every
        # step (DeepCTR's 1/T), so those steps are in the slices too.
        empty = ~valid.any(axis=1)
        if layout != "ragged":
            valid = valid | empty[:, None]
    # The valid steps' ids, in (row, step) order: nothing from padding.
    np.testing.assert_array_equal(grad.indices.numpy(), ids[valid])
    assert grad.values.shape == (int(valid.sum()), E)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_variable_and_tensor_tables_agree(rng, mode):
    table = rng.standard_normal((V, E))
    ids = _ids(rng)
    out_v, grad_v, _ = _run(table, ids, mode, lengths=LENGTHS)
    out_t, grad_t, _ = _run(table, ids, mode, variable=False, lengths=LENGTHS)
    np.testing.assert_array_equal(out_v.numpy(), out_t.numpy())
    np.testing.assert_array_equal(tf.convert_to_tensor(grad_v).numpy(),
                                  tf.convert_to_tensor(grad_t).numpy())


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("layout", ["lengths", "mask", "ragged"])
def test_compute_gradient_float64(rng, mode, layout):
    """tf.test.compute_gradient w.r.t. the table and the weights (distinct
    values, so that max has no tie within a finite-difference step)."""
    table = rng.permutation(V * E).reshape(V, E).astype(np.float64) / (V * E) + 0.5
    ids = _ids(rng)
    weights = rng.uniform(0.5, 2.0, size=(B, T))
    mask = rng.random((B, T)) < 0.6
    if layout == "ragged":
        ids_in = tf.RaggedTensor.from_tensor(ids, lengths=np.clip(LENGTHS, 0, T))
        kwargs = {}
        weights_in = lambda w: tf.RaggedTensor.from_tensor(  # noqa: E731
            w, lengths=np.clip(LENGTHS, 0, T))
    else:
        ids_in = ids
        kwargs = {"lengths": LENGTHS} if layout == "lengths" else {"mask": mask}
        weights_in = lambda w: w  # noqa: E731

    def f(table, weights):
        return embedding_sequence_pool(table, ids_in, weights=weights_in(weights), mode=mode,
                                       **kwargs)

    theoretical, numerical = tf.test.compute_gradient(
        f, [tf.constant(table), tf.constant(weights)], delta=1e-6)
    for th, nu in zip(theoretical, numerical):
        np.testing.assert_allclose(th, nu, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float32])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_narrow_types_accumulate_in_float32(rng, dtype, mode):
    table = rng.standard_normal((V, E)).astype(np.float32)
    table = tf.cast(tf.cast(table, dtype), tf.float64).numpy()  # Representable in dtype.
    ids = _ids(rng)
    weights = rng.uniform(0.5, 2.0, size=(B, T))
    out, grad, grad_w = _run(table, ids, mode, dtype=dtype, lengths=LENGTHS, weights=weights)
    want, want_grad, want_w = _run(table, ids, mode, lengths=LENGTHS,
                                   weights=tf.cast(tf.cast(weights, dtype), tf.float64).numpy())
    assert out.dtype == dtype and grad.values.dtype == dtype
    tol = {tf.float16: 2e-3, tf.bfloat16: 2e-2, tf.float32: 1e-6}[dtype]
    got = tf.cast(out, tf.float64).numpy()
    want = want.numpy()
    if mode == "max":
        # Rows with no valid step pool to -1e9, beyond float16's range.
        empty = np.clip(LENGTHS, 0, T) == 0
        expected = -np.inf if dtype == tf.float16 else -1e9
        np.testing.assert_allclose(got[empty], expected, rtol=tol)
        got, want = got[~empty], want[~empty]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_allclose(tf.cast(tf.convert_to_tensor(grad), tf.float64).numpy(),
                               tf.convert_to_tensor(want_grad).numpy(), rtol=tol, atol=tol * 4)
    np.testing.assert_allclose(tf.cast(grad_w, tf.float64).numpy(), want_w.numpy(),
                               rtol=tol, atol=tol * 8)


def test_out_of_range_id_names_the_id_and_the_vocabulary(rng):
    table = tf.constant(rng.standard_normal((V, E)))
    ids = _ids(rng)
    ids[1, 0] = V + 5
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"ids\[1, 0\] = {V + 5} is not in \[0, {V}\)"):
        embedding_sequence_pool(table, ids, lengths=LENGTHS)
    ids[1, 0] = -3
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"ids\[1, 0\] = -3 is not in"):
        embedding_sequence_pool(table, ids, lengths=LENGTHS, mode="max")
    ragged = tf.RaggedTensor.from_row_splits(tf.constant([1, 2, V], tf.int64), [0, 2, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"ids\[2\] = {V} is not in"):
        embedding_sequence_pool(table, ragged)


def test_ids_that_are_never_read_are_not_checked(rng):
    """Padding ids (past the length, masked, or 0 with mask_zero) are never
    read: any value works there, as with a lengths input DeepCTR never uses."""
    table = rng.standard_normal((V, E))
    ids = _ids(rng)
    padded = np.arange(T)[None, :] >= np.clip(LENGTHS, 0, T)[:, None]
    bad = ids.copy()
    bad[padded] = -7
    for mode in ("sum", "mean"):
        got = embedding_sequence_pool(table, bad, lengths=LENGTHS, mode=mode)
        want = embedding_sequence_pool(table, ids, lengths=LENGTHS, mode=mode)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    # Max reads every step of a row with no valid one (DeepCTR's -1e9 shift).
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"ids\[0, 0\] = -7"):
        embedding_sequence_pool(table, bad, lengths=LENGTHS, mode="max")


def test_shape_function_errors_name_the_argument():
    table = tf.zeros([V, E])
    ids = tf.zeros([B, T], tf.int64)

    @tf.function
    def call(fn):
        return fn()

    with pytest.raises(ValueError, match="mask must be \\[batch, time\\] like ids"):
        call(lambda: embedding_sequence_pool(table, ids, mask=tf.zeros([B, T + 1], tf.bool)))
    with pytest.raises(ValueError, match="lengths must have shape \\[batch\\] or"):
        call(lambda: embedding_sequence_pool(table, ids, lengths=tf.zeros([B + 1], tf.int32)))
    with pytest.raises(ValueError, match="weights must have the shape of ids"):
        call(lambda: embedding_sequence_pool(table, ids, lengths=tf.zeros([B], tf.int32),
                                             weights=tf.zeros([B, T + 1])))
    with pytest.raises(ValueError, match="ids must have rank 2"):
        embedding_sequence_pool(table, tf.zeros([B], tf.int64))
    with pytest.raises(ValueError, match="table must have shape \\[vocabulary, embedding\\]"):
        embedding_sequence_pool(tf.zeros([V]), ids)
    with pytest.raises(ValueError, match="ids must be int32 or int64"):
        embedding_sequence_pool(table, tf.zeros([B, T]))
    with pytest.raises(ValueError, match="pass lengths or mask, not both"):
        embedding_sequence_pool(table, ids, lengths=tf.zeros([B], tf.int32),
                                mask=tf.zeros([B, T], tf.bool))
    with pytest.raises(ValueError, match="mode must be one of"):
        embedding_sequence_pool(table, ids, mode="median")


def test_raw_op_rejects_inconsistent_inputs_at_run_time():
    """The kernels check what the shape functions cannot see (eager calls)."""
    gen = deepctr_ops._loader.load()
    table = tf.zeros([V, E])
    ids = tf.zeros([B, T], tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="weights must be (empty|the empty)"):
        gen.DeepCTR_EmbeddingSequencePool(table=table, ids=ids, lengths=tf.zeros([B], tf.int32),
                                          weights=tf.zeros([3]), mode="sum")
    with pytest.raises(tf.errors.InvalidArgumentError, match="row_splits"):
        gen.DeepCTR_RaggedEmbeddingSequencePool(table=table, ids=tf.zeros([4], tf.int64),
                                                row_splits=tf.constant([0, 3, 2], tf.int64),
                                                weights=tf.zeros([0]), mode="sum")
    with pytest.raises(tf.errors.InvalidArgumentError, match="grad must"):
        gen.DeepCTR_EmbeddingSequencePoolGrad(
            table=table, ids=ids, lengths=tf.zeros([B], tf.int32), weights=tf.zeros([0]),
            argmax=tf.zeros([0], tf.int32), grad=tf.zeros([B, 1, E + 1]), mode="sum")


def test_second_order_names_the_op(rng):
    table = tf.constant(rng.standard_normal((V, E)))
    ids = _ids(rng)
    with tf.GradientTape() as outer:
        outer.watch(table)
        with tf.GradientTape() as inner:
            inner.watch(table)
            out = embedding_sequence_pool(table, ids, lengths=LENGTHS, mode="sum")
        grad = tf.convert_to_tensor(inner.gradient(out, table))
        penalty = tf.reduce_sum(grad**2)
    with pytest.raises(LookupError, match="EmbeddingSequencePoolGrad"):
        outer.gradient(penalty, table)


@pytest.mark.parametrize("shape", [(0, T, E), (B, 0, E), (B, T, 0)])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_empty_shapes(shape, mode):
    b, t, e = shape
    table = tf.Variable(tf.ones([V, e], tf.float64))
    ids = tf.ones([b, t], tf.int64)
    with tf.GradientTape() as tape:
        out = embedding_sequence_pool(table, ids, lengths=tf.fill([b], t), mode=mode)
    assert out.shape == (b, 1, e)
    if mode == "max" and t == 0:
        assert np.all(np.isneginf(out.numpy()))  # reduce_max over nothing.
    grad = tape.gradient(out, table)
    assert grad.values.shape[0] == (0 if t == 0 or b == 0 else b * t)


def test_graph_mode_unknown_batch_and_xla_fallback(rng):
    table = tf.Variable(rng.standard_normal((V, E)))
    ids = _ids(rng)
    spec = [tf.TensorSpec([None, T], tf.int64), tf.TensorSpec([None], tf.int64)]

    @tf.function(input_signature=spec)
    def graph(ids, lengths):
        return embedding_sequence_pool(table, ids, lengths=lengths, mode="mean")

    @tf.function(jit_compile=True)
    def xla(ids, lengths):
        return embedding_sequence_pool(table, ids, lengths=lengths, mode="mean")

    eager = embedding_sequence_pool(table, ids, lengths=LENGTHS, mode="mean")
    np.testing.assert_allclose(graph(ids, LENGTHS).numpy(), eager.numpy(), rtol=1e-14)
    np.testing.assert_allclose(xla(ids, LENGTHS).numpy(), eager.numpy(), rtol=1e-12)
    assert "DeepCTR>EmbeddingSequencePool" in {
        op.type for op in graph.get_concrete_function().graph.get_operations()}


def test_keras_variable_table_is_read_in_place(rng):
    """A Keras variable (Keras 3 wraps a tf.Variable) is passed by handle: the
    op reads the variable, and the tape sees it."""
    import keras

    layer = keras.layers.Embedding(V, E)
    layer.build((None, T))
    ids = _ids(rng)
    with tf.GradientTape() as tape:
        out = embedding_sequence_pool(layer.embeddings, ids, lengths=LENGTHS, mode="sum")
    grad = tape.gradient(out, layer.trainable_variables)
    assert isinstance(grad[0], tf.IndexedSlices)
    want = embedding_sequence_pool(tf.convert_to_tensor(layer.embeddings), ids,
                                   lengths=LENGTHS, mode="sum")
    np.testing.assert_array_equal(out.numpy(), want.numpy())
