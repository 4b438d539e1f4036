"""EmbeddingSequencePooling against Keras' Embedding + DeepCTR's SequencePoolingLayer
(and WeightedSequenceLayer), in the Keras flavour this run uses (CI runs
tests/layers under Keras 3 and under tf_keras; DeepCTR's pooling layers run in
both, as in test_sequence_pooling_layer.py).

DeepCTR's pooling casts its masks to float32, so the DeepCTR parity is float32;
float64 is checked against Keras' Embedding followed by deepctr_ops'
(DeepCTR-tested) pooling layers on the dense [B,T,E] values, and between the
fused op and its composite twin.
"""

from __future__ import annotations

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr.layers.sequence import SequencePoolingLayer as DeepCTRPooling
from deepctr.layers.sequence import WeightedSequenceLayer as DeepCTRWeighted
from deepctr_ops.compat import IS_KERAS_3, keras
from deepctr_ops.layers import EmbeddingSequencePooling, SequencePoolingLayer
from deepctr_ops.layers import WeightedSequenceLayer as OurWeighted
from helpers import ragged_lengths, save_and_load, save_formats

MODES = ["sum", "mean", "max"]
V, E, T, B = 40, 5, 6, 16
F32 = dict(rtol=1e-5, atol=1e-6)
F64 = dict(rtol=1e-12, atol=1e-12)


# ---- inputs ------------------------------------------------------------------


def _table(rng, dtype=np.float32) -> np.ndarray:
    return rng.standard_normal((V, E)).astype(dtype)


def _lengths(rng) -> np.ndarray:
    """[B,1] int32: 0, 1, T, T+3 and -2 (clamped like tf.sequence_mask), random rest."""
    return ragged_lengths(rng, B, T).astype(np.int32)


def _ids(rng, lengths: np.ndarray) -> np.ndarray:
    """As DeepCTR feeds them: ids in [1, V) within the length, 0 in the padding."""
    ids = rng.integers(1, V, size=(B, T)).astype(np.int32)
    ids[np.arange(T)[None, :] >= np.clip(lengths, 0, T)] = 0
    return ids


def _weights(rng, dtype=np.float32) -> np.ndarray:
    return rng.standard_normal((B, T, 1)).astype(dtype)


def _upstream(shape, dtype) -> tf.Tensor:
    return tf.constant(np.random.default_rng(7).standard_normal(shape), dtype)


def _value_and_grads(fn, table_variable, watched=()):
    """fn() -> out; the table gradient (as returned) and d/d watched tensors of
    sum(out * upstream)."""
    with tf.GradientTape() as tape:
        for x in watched:
            tape.watch(x)
        out = fn()
        loss = tf.reduce_sum(out * _upstream(out.shape, out.dtype))
    grads = tape.gradient(loss, [table_variable, *watched])
    return out.numpy(), grads[0], [g.numpy() for g in grads[1:]]


def _dense(grad) -> np.ndarray:
    return tf.convert_to_tensor(grad).numpy()


# ---- the two sides ----------------------------------------------------------


def _keras_embedding(table, mask_zero=False) -> keras.layers.Embedding:
    emb = keras.layers.Embedding(V, E, mask_zero=mask_zero, dtype=table.dtype.name)
    emb.build((None, T))
    emb.set_weights([table])
    return emb


def _ours(table, call, mode, mask_zero=False, weight_normalization=True, watched=()):
    layer = EmbeddingSequencePooling(V, E, mode, mask_zero=mask_zero,
                                     weight_normalization=weight_normalization,
                                     dtype=table.dtype.name)
    layer.build(None)
    layer.set_weights([table])
    out, grad, other = _value_and_grads(lambda: call(layer), layer.trainable_weights[0],
                                        watched)
    assert isinstance(grad, tf.IndexedSlices)
    return out, _dense(grad), other


def _deepctr_lengths(table, ids, lengths, mode, weights=None, weight_normalization=True,
                     watched=()):
    """Embedding -> [WeightedSequenceLayer] -> SequencePoolingLayer, lengths style."""
    emb = _keras_embedding(table)

    def fn():
        h = emb(ids)
        if weights is not None:
            h = DeepCTRWeighted(weight_normalization)([h, lengths, weights])
        return DeepCTRPooling(mode)([h, lengths])

    out, grad, other = _value_and_grads(fn, emb.trainable_weights[0], watched)
    return out, _dense(grad), other


def _deepctr_masked(table, ids, mode, weights=None, weight_normalization=True, mask=None,
                    watched=()):
    """Embedding(mask_zero=True) -> [WeightedSequenceLayer] -> SequencePoolingLayer with
    supports_masking=True (or an explicit `mask` on an Embedding without mask_zero)."""
    emb = _keras_embedding(table, mask_zero=mask is None)

    def fn():
        h = emb(ids)
        m = emb.compute_mask(ids) if mask is None else tf.constant(mask)
        if weights is not None:
            h = DeepCTRWeighted(weight_normalization, supports_masking=True)([h, weights],
                                                                              mask=[m, None])
        return DeepCTRPooling(mode, supports_masking=True)(h, mask=m)

    out, grad, other = _value_and_grads(fn, emb.trainable_weights[0], watched)
    return out, _dense(grad), other


def _assert_same(ours, theirs, tol) -> None:
    for a, b in zip(ours, theirs):
        if isinstance(a, list):
            _assert_same(a, b, tol)
        else:
            np.testing.assert_allclose(a, b, **tol)


# ---- parity with DeepCTR ----------------------------------------------------


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("mode", MODES)
def test_lengths_match_keras_embedding_and_deepctr(rng, impl, mode):
    table, lengths = _table(rng), _lengths(rng)
    ids = _ids(rng, lengths)
    ids[3, 4:] = rng.integers(1, V, size=T - 4)  # Garbage ids beyond a length are ignored.
    deepctr_ops.set_implementation(impl)
    for call in (lambda layer: layer([ids, lengths]),
                 lambda layer: layer(ids, lengths=lengths)):
        ours = _ours(table, call, mode)
        _assert_same(ours, _deepctr_lengths(table, ids, lengths, mode), F32)
        assert np.abs(ours[1]).sum() > 0


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("mode", MODES)
def test_keras_mask_matches_mask_zero_embedding_and_deepctr(rng, impl, mode):
    table, lengths = _table(rng), _lengths(rng)
    ids = _ids(rng, lengths)
    ids[6, 1] = ids[7, 0] = 0  # Padding inside a row too: the Keras mask is any pattern.
    deepctr_ops.set_implementation(impl)
    ours = _ours(table, lambda layer: layer(ids), mode, mask_zero=True)
    _assert_same(ours, _deepctr_masked(table, ids, mode), F32)


@pytest.mark.parametrize("mode", MODES)
def test_explicit_mask_matches_deepctr(rng, mode):
    table = _table(rng)
    ids = rng.integers(0, V, size=(B, T)).astype(np.int32)  # Id 0 is a real row here.
    mask = rng.random((B, T)) < 0.5
    mask[0] = False
    mask[1] = True
    ours = _ours(table, lambda layer: layer(ids, mask=tf.constant(mask)), mode)
    _assert_same(ours, _deepctr_masked(table, ids, mode, mask=mask), F32)


@pytest.mark.parametrize("weight_normalization", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_weighted_lengths_match_deepctr(rng, mode, weight_normalization):
    table, lengths = _table(rng), _lengths(rng)
    ids, weights = _ids(rng, lengths), _weights(rng)
    w = tf.constant(weights)
    for call in (lambda layer: layer([ids, lengths, w]),
                 lambda layer: layer(ids, lengths=lengths, weights=w)):
        ours = _ours(table, call, mode, weight_normalization=weight_normalization,
                     watched=(w,))
        theirs = _deepctr_lengths(table, ids, lengths, mode, w, weight_normalization,
                                  watched=(w,))
        _assert_same(ours, theirs, F32)


@pytest.mark.parametrize("weight_normalization", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_weighted_keras_mask_matches_deepctr(rng, mode, weight_normalization):
    table, lengths = _table(rng), _lengths(rng)
    ids, w = _ids(rng, lengths), tf.constant(_weights(rng))
    ours = _ours(table, lambda layer: layer(ids, weights=w), mode, mask_zero=True,
                 weight_normalization=weight_normalization, watched=(w,))
    theirs = _deepctr_masked(table, ids, mode, w, weight_normalization, watched=(w,))
    _assert_same(ours, theirs, F32)


def test_weight_normalization_is_ignored_without_weights(rng):
    table, lengths = _table(rng), _lengths(rng)
    ids = _ids(rng, lengths)
    on = _ours(table, lambda layer: layer([ids, lengths]), "sum", weight_normalization=True)
    off = _ours(table, lambda layer: layer([ids, lengths]), "sum", weight_normalization=False)
    _assert_same(on, off, dict(rtol=0, atol=0))


# ---- ragged ids ---------------------------------------------------------------


def _ragged(ids, lengths) -> tf.RaggedTensor:
    clamped = np.clip(lengths[:, 0], 0, T)
    return tf.RaggedTensor.from_row_lengths(
        np.concatenate([ids[b, :n] for b, n in enumerate(clamped)]), clamped)


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("mode", MODES)
def test_ragged_ids_match_padded_deepctr(rng, impl, mode):
    table = _table(rng)
    lengths = np.clip(_lengths(rng), 0, T)
    if mode == "max":
        # A dense empty row's max spreads its gradient over its T padded steps
        # (DeepCTR's -1e9 shift); a ragged empty row has no step to send it to.
        lengths[lengths == 0] = 2
    ids = _ids(rng, lengths)
    deepctr_ops.set_implementation(impl)
    ours = _ours(table, lambda layer: layer(_ragged(ids, lengths)), mode)
    _assert_same(ours, _deepctr_lengths(table, ids, lengths, mode), F32)


@pytest.mark.parametrize("mode", MODES)
def test_ragged_empty_row_pools_like_padding_and_gets_no_gradient(rng, mode):
    table = _table(rng)
    rt = tf.ragged.constant([[3, 4], [], [5]], dtype=tf.int32)
    out, grad, _ = _ours(table, lambda layer: layer(rt), mode)
    np.testing.assert_array_equal(out[1], np.full((1, E), -1e9 if mode == "max" else 0.0))
    touched = np.flatnonzero(np.abs(grad).sum(axis=1))
    np.testing.assert_array_equal(touched, [3, 4, 5])


@pytest.mark.parametrize("weight_normalization", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_ragged_weighted_ids_match_padded_deepctr(rng, mode, weight_normalization):
    table, lengths = _table(rng), np.clip(_lengths(rng), 1, T)
    ids, weights = _ids(rng, lengths), _weights(rng)
    ragged_weights = _ragged(weights[:, :, 0], lengths)
    ours = _ours(table, lambda layer: layer(_ragged(ids, lengths), weights=ragged_weights),
                 mode, weight_normalization=weight_normalization)
    theirs = _deepctr_lengths(table, ids, lengths, mode, weights, weight_normalization)
    _assert_same(ours, theirs, F32)


@pytest.mark.parametrize("mode", MODES)
def test_ragged_mask_zero_drops_zero_ids_like_deepctr_mask(rng, mode):
    table, lengths = _table(rng), np.clip(_lengths(rng), 0, T)
    ids = _ids(rng, lengths)
    ids[lengths[:, 0] >= 3, 1] = 0  # Zero ids inside ragged rows: dropped.
    if mode == "max":  # Keep every row non-empty (see the dense max rule above).
        ids[:, 0] = np.maximum(ids[:, 0], 1)
        lengths = np.maximum(lengths, 1)
    ours = _ours(table, lambda layer: layer(_ragged(ids, lengths)), mode, mask_zero=True)
    _assert_same(ours, _deepctr_masked(table, ids, mode), F32)


# ---- the table gradient is sparse over the valid steps ----------------------


def _table_grad(layer, call) -> tf.IndexedSlices:
    with tf.GradientTape() as tape:
        out = call(layer)
        loss = tf.reduce_sum(out * _upstream(out.shape, out.dtype))
    grad = tape.gradient(loss, layer.trainable_weights[0])
    assert isinstance(grad, tf.IndexedSlices)
    return grad


@pytest.mark.parametrize("mode", MODES)
def test_table_gradient_indices_are_the_valid_steps_ids(rng, mode):
    lengths = _lengths(rng)
    if mode == "max":
        lengths[lengths[:, 0] <= 0] = 1  # Every row has a valid step (see below).
    ids = _ids(rng, lengths)
    layer = EmbeddingSequencePooling(V, E, mode)
    grad = _table_grad(layer, lambda layer: layer([ids, lengths]))
    valid = [ids[b, :n] for b, n in enumerate(np.clip(lengths[:, 0], 0, T))]
    expected = np.concatenate(valid)  # (row, step) order, not de-duplicated.
    np.testing.assert_array_equal(grad.indices.numpy(), expected)
    assert grad.values.shape == (len(expected), E)
    assert len(expected) == int(np.clip(lengths, 0, T).sum()) < B * T

    masked = EmbeddingSequencePooling(V, E, mode, mask_zero=True)
    ids[2, 1] = 0  # Row 2 has length T: a zero id inside it is padding too.
    grad = _table_grad(masked, lambda layer: layer(ids))
    np.testing.assert_array_equal(grad.indices.numpy(), ids[ids != 0])

    rt = _ragged(ids, np.clip(lengths, 0, T))
    grad = _table_grad(EmbeddingSequencePooling(V, E, mode), lambda layer: layer(rt))
    np.testing.assert_array_equal(grad.indices.numpy(), rt.values.numpy())


def test_an_empty_dense_rows_max_gradient_covers_its_padded_steps(rng):
    # DeepCTR's rule: an empty row's max is over every step shifted by -1e9,
    # so those steps (their ids, padding or not) are the ones pooled.
    ids = np.array([[3, 4, 0], [7, 8, 9]], np.int32)
    lengths = np.array([[2], [0]], np.int32)
    grad = _table_grad(EmbeddingSequencePooling(V, E, "max"), lambda layer: layer([ids, lengths]))
    np.testing.assert_array_equal(grad.indices.numpy(), [3, 4, 7, 8, 9])


# ---- float64, and the op against its twin -----------------------------------


def _forms(rng, dtype):
    """(name, call, mask_zero, reference(mode, embedding)) per call form; the
    reference pools the dense [B,T,E] embeddings with deepctr_ops' layers."""
    lengths = _lengths(rng)
    ids = _ids(rng, lengths)
    w = tf.constant(_weights(rng, dtype))
    mask = tf.constant(rng.random((B, T)) < 0.6)
    clamped = np.clip(lengths, 1, T)  # Non-empty ragged rows (see the max rule above).
    rt_ids = _ids(rng, clamped)
    rt, rt_w = _ragged(rt_ids, clamped), _ragged(w.numpy()[:, :, 0], clamped)
    kind = np.dtype(dtype).name  # Keras 3 casts a layer's float inputs to its dtype.

    def pool(mode):
        return SequencePoolingLayer(mode, dtype=kind)

    def masked_pool(mode):
        return SequencePoolingLayer(mode, supports_masking=True, dtype=kind)

    def weighted(inputs):
        return OurWeighted(True, dtype=kind)(inputs)

    return [
        ("lengths", lambda layer: layer([ids, lengths]), False,
         lambda mode, emb: pool(mode)([emb(ids), lengths])),
        ("weighted", lambda layer: layer([ids, lengths, w]), False,
         lambda mode, emb: pool(mode)([weighted([emb(ids), lengths, w]), lengths])),
        ("mask", lambda layer: layer(ids, mask=mask), False,
         lambda mode, emb: masked_pool(mode)(emb(ids), mask=mask)),
        ("mask_zero", lambda layer: layer(ids), True,
         lambda mode, emb: masked_pool(mode)(emb(ids), mask=tf.not_equal(ids, 0))),
        ("ragged", lambda layer: layer(rt), False,
         lambda mode, emb: pool(mode)([emb(rt_ids), clamped])),
        ("ragged weighted", lambda layer: layer(rt, weights=rt_w), False,
         lambda mode, emb: pool(mode)([weighted([emb(rt_ids), clamped, w]), clamped])),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_float64_op_twin_and_dense_reference_agree(rng, mode):
    table = _table(rng, np.float64)
    for name, call, mask_zero, reference in _forms(rng, np.float64):
        results = []
        for impl in ("op", "tf"):
            deepctr_ops.set_implementation(impl)
            results.append(_ours(table, call, mode, mask_zero=mask_zero))
        deepctr_ops.set_implementation("op")
        emb = _keras_embedding(table)
        ref_out, ref_grad, _ = _value_and_grads(
            lambda reference=reference, emb=emb: reference(mode, emb), emb.trainable_weights[0])
        assert results[0][0].dtype == np.float64, name
        _assert_same(results[0], results[1], F64)
        _assert_same(results[0][:2], (ref_out, _dense(ref_grad)), F64)


# ---- weights, sharing and training ------------------------------------------


def test_weight_is_named_and_shaped_like_embedding_and_loads_its_weights(rng):
    emb = keras.layers.Embedding(V, E, mask_zero=True)
    emb.build((None, T))
    layer = EmbeddingSequencePooling(V, E, "mean", mask_zero=True)
    layer.build(None)
    assert [tuple(w.shape) for w in layer.weights] == [(V, E)]
    assert "embeddings" in layer.weights[0].name
    layer.set_weights(emb.get_weights())
    lengths = _lengths(rng)
    ids = _ids(rng, lengths)
    np.testing.assert_allclose(
        layer(ids).numpy(), DeepCTRPooling("mean", supports_masking=True)(
            emb(ids), mask=emb.compute_mask(ids)).numpy(), **F32)


def test_shapes_and_no_output_mask(rng):
    layer = EmbeddingSequencePooling(V, E, "sum", mask_zero=True)
    assert tuple(layer.compute_output_shape((None, T))) == (None, 1, E)
    assert tuple(layer.compute_output_shape([(8, T), (8, 1), (8, T, 1)])) == (8, 1, E)
    ids = keras.Input((T,), dtype="int32")
    out = layer(ids)
    assert tuple(out.shape) == (None, 1, E)
    assert getattr(out, "_keras_mask", None) is None
    assert layer.compute_mask(ids, tf.ones([2, T], tf.bool)) is None
    eager = layer(_ids(rng, _lengths(rng)))
    assert eager.shape == (B, 1, E) and getattr(eager, "_keras_mask", None) is None


def _shared_model(shared, mode_a="mean", mode_b="sum"):
    """Two sequence features on one table: history ids (id 0 = padding, Keras
    mask style) and clicked ids with lengths (DeepCTR's length style)."""
    hist = EmbeddingSequencePooling(V, E, mode_a, mask_zero=True, table=shared, name="hist")
    clicks = EmbeddingSequencePooling(V, E, mode_b, table=shared, name="clicks")
    a = keras.Input((T,), dtype="int32")
    b = keras.Input((T,), dtype="int32")
    n = keras.Input((1,), dtype="int32")
    h = keras.layers.Concatenate()([keras.layers.Flatten()(hist(a)),
                                    keras.layers.Flatten()(clicks(b, lengths=n))])
    out = keras.layers.Dense(1, activation="sigmoid",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=1))(h)
    return keras.Model([a, b, n], out), hist, clicks


def _training_data(rng, batch=256):
    """Ids only in [1, V/2): row 0 (padding) and rows >= V/2 are never touched."""
    n = rng.integers(0, T + 1, size=(batch, 1)).astype(np.int32)
    a = rng.integers(1, V // 2, size=(batch, T)).astype(np.int32)
    a[np.arange(T)[None, :] >= rng.integers(0, T + 1, size=(batch, 1))] = 0
    b = rng.integers(1, V // 2, size=(batch, T)).astype(np.int32)
    b[np.arange(T)[None, :] >= n] = 0
    y = ((a % 3 == 0).sum(1, keepdims=True) > (b % 2 == 0).sum(1, keepdims=True))
    return [a, b, n], y.astype(np.float32)


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_shared_table_trains_with_fit_and_untouched_rows_stay_identical(rng, optimizer):
    # The fused op hands the optimizer a tf.IndexedSlices over the pooled steps.
    # tf_keras applies it sparsely (only those rows' slots and values move).
    # Keras 3's Adam, by its own design, updates its moments densely: its
    # update_step subtracts the dense first moment m from the whole table, so a
    # row touched once keeps moving afterwards. A row never touched has m = 0
    # and so stays bit-identical under both; likewise for Adagrad and SGD.
    shared = keras.layers.Embedding(
        V, E, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=3))
    model, hist, clicks = _shared_model(shared)
    tables = [w for w in model.trainable_weights if tuple(w.shape) == (V, E)]
    assert len(tables) == 1 and len(model.trainable_weights) == 3
    assert hist.embeddings is clicks.embeddings is shared.embeddings
    x, y = _training_data(rng)
    before = shared.get_weights()[0].copy()
    opt = {"adam": keras.optimizers.Adam(0.02), "adagrad": keras.optimizers.Adagrad(0.2),
           "sgd": keras.optimizers.SGD(0.5)}[optimizer]
    model.compile(optimizer=opt, loss="binary_crossentropy")
    losses = model.fit(x, y, batch_size=32, epochs=6, shuffle=False, verbose=0).history["loss"]
    assert losses[-1] < 0.9 * losses[0], losses
    after = shared.get_weights()[0]
    touched = np.zeros(V, bool)
    touched[np.unique(x[0][x[0] != 0])] = True
    touched[np.unique(x[1][np.arange(T)[None, :] < x[2]])] = True
    assert not touched[0] and not touched[V // 2:].any() and touched[1:V // 2].all()
    assert after[~touched].tobytes() == before[~touched].tobytes()
    assert (np.abs(after[touched] - before[touched]).max(axis=1) > 0).all()


def test_shared_table_regularizer_counts_once(rng):
    shared = keras.layers.Embedding(V, E, embeddings_regularizer=keras.regularizers.l2(0.1))
    model, _, _ = _shared_model(shared)
    x, _ = _training_data(rng, batch=4)
    model(x)
    assert len(model.losses) == 1
    expected = 0.1 * np.sum(np.square(shared.get_weights()[0]))
    np.testing.assert_allclose(float(tf.add_n(model.losses)), expected, rtol=1e-5)


def test_table_can_be_a_variable_or_another_pooling_layer(rng):
    owner = EmbeddingSequencePooling(V, E, "sum")
    owner.build(None)
    by_variable = EmbeddingSequencePooling(V, E, "mean", table=owner.embeddings)
    by_layer = EmbeddingSequencePooling(V, E, "max", table=owner)
    lengths = _lengths(rng)
    ids = _ids(rng, lengths)
    for layer, mode in ((by_variable, "mean"), (by_layer, "max")):
        assert layer.embeddings is owner.embeddings
        expected = EmbeddingSequencePooling(V, E, mode)
        expected.build(None)
        expected.set_weights(owner.get_weights())
        np.testing.assert_array_equal(layer([ids, lengths]).numpy(),
                                      expected([ids, lengths]).numpy())
    owner.set_weights([np.zeros((V, E), np.float32)])
    assert not by_variable([ids, lengths]).numpy().any()
    assert set(np.unique(by_layer([ids, lengths]).numpy())) == {0.0, -1e9}  # -1e9: empty rows.


def test_an_unbuilt_embedding_is_built_when_shared():
    shared = keras.layers.Embedding(V, E)
    layer = EmbeddingSequencePooling(V, E, "sum", table=shared)
    out = layer(np.ones((2, T), np.int32))
    assert shared.built and out.shape == (2, 1, E)
    assert layer.embeddings is shared.embeddings


def test_bad_tables_and_inputs_are_value_errors():
    with pytest.raises(ValueError, match=r"shape \(40, 3\)"):
        EmbeddingSequencePooling(V, E, table=keras.layers.Embedding(V, 3))
    with pytest.raises(ValueError, match="Embedding"):
        EmbeddingSequencePooling(V, E, table=keras.layers.Dense(3))
    if IS_KERAS_3:
        with pytest.raises(ValueError, match="keras.Variable"):
            EmbeddingSequencePooling(V, E, table=tf.Variable(tf.zeros([V, E])))
    with pytest.raises(ValueError, match="'sum', 'mean', 'max'"):
        EmbeddingSequencePooling(V, E, "median")
    layer = EmbeddingSequencePooling(V, E, "sum")
    ids, lengths = np.ones((2, T), np.int32), np.ones((2, 1), np.int32)
    with pytest.raises(ValueError, match="lengths given both"):
        layer([ids, lengths], lengths=lengths)
    with pytest.raises(ValueError, match="not both"):
        layer(ids, lengths=lengths, mask=tf.ones((2, T), tf.bool))
    with pytest.raises(ValueError, match="list of 4"):
        layer([ids, lengths, ids, ids])


# ---- config and saving ------------------------------------------------------


def test_config_round_trip():
    defaults = EmbeddingSequencePooling(V, E).get_config()
    assert (defaults["mode"], defaults["mask_zero"], defaults["weight_normalization"]) == (
        "mean", False, True)  # weight_normalization: DeepCTR's weight_norm default.
    layer = EmbeddingSequencePooling(
        V, E, "max", mask_zero=True,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=2),
        embeddings_regularizer=keras.regularizers.l2(0.01),
        embeddings_constraint=keras.constraints.NonNeg(), weight_normalization=False,
        name="emb_pool")
    config = layer.get_config()
    assert {k: config[k] for k in ("input_dim", "output_dim", "mode", "mask_zero",
                                   "weight_normalization")} == {
        "input_dim": V, "output_dim": E, "mode": "max", "mask_zero": True,
        "weight_normalization": False}
    clone = EmbeddingSequencePooling.from_config(config)
    assert clone.get_config() == config and clone.name == "emb_pool"
    assert isinstance(clone.embeddings_regularizer, keras.regularizers.L2)
    assert isinstance(clone.embeddings_constraint, keras.constraints.NonNeg)


def test_a_layer_sharing_a_table_has_no_config():
    layer = EmbeddingSequencePooling(V, E, table=keras.layers.Embedding(V, E))
    with pytest.raises(NotImplementedError, match="save_weights"):
        layer.get_config()


def _model():
    ids = keras.Input((T,), dtype="int32")
    clicked = keras.Input((T,), dtype="int32")
    n = keras.Input((1,), dtype="int32")
    w = keras.Input((T, 1))
    a = EmbeddingSequencePooling(V, E, "mean", mask_zero=True, name="hist")(ids)
    b = EmbeddingSequencePooling(V, E, "max", name="clicks")([clicked, n, w])
    h = keras.layers.Concatenate()([keras.layers.Flatten()(a), keras.layers.Flatten()(b)])
    return keras.Model([ids, clicked, n, w], keras.layers.Dense(1)(h))


@pytest.mark.parametrize("fmt", save_formats())
def test_save_and_load_round_trip(tmp_path, rng, fmt):
    model = _model()
    lengths = _lengths(rng)
    x = [_ids(rng, lengths), _ids(rng, lengths), lengths, _weights(rng)]
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.ones((B, 1)), epochs=2, verbose=0)
    expected = model.predict(x, verbose=0)
    loaded = save_and_load(model, fmt, tmp_path)
    assert isinstance(loaded.get_layer("hist"), EmbeddingSequencePooling)
    assert loaded.get_layer("clicks").get_config() == model.get_layer("clicks").get_config()
    for ours, theirs in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)


def test_functional_model_from_config(rng):
    model = _model()
    clone = keras.Model.from_config(model.get_config(), custom_objects=deepctr_ops.custom_objects)
    clone.set_weights(model.get_weights())
    lengths = _lengths(rng)
    x = [_ids(rng, lengths), _ids(rng, lengths), lengths, _weights(rng)]
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.skipif(IS_KERAS_3, reason="patch_deepctr needs tf_keras, as DeepCTR's model "
                    "builders do (test_patch_deepctr.py); CI runs tests/layers under tf_keras too")
def test_not_patched_into_deepctr():
    import deepctr.layers.sequence as sequence

    with deepctr_ops.patch_deepctr():
        assert not hasattr(sequence, "EmbeddingSequencePooling")
        assert "EmbeddingSequencePooling" in deepctr_ops.custom_objects
