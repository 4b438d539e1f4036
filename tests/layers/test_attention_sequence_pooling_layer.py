"""AttentionSequencePoolingLayer against DeepCTR's (the oracle, weights copied),
in the Keras flavour this run uses (CI runs tests/layers under Keras 3 and
under tf_keras), plus config, masks, rebuilding and a DIN-style model."""

from __future__ import annotations

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr.layers.sequence import AttentionSequencePoolingLayer as DeepCTRAttention
from deepctr_ops.compat import keras
from deepctr_ops.layers.sequence import AttentionSequencePoolingLayer
from helpers import save_and_load, save_formats

B, T, E = 8, 5, 4
COMBOS = [(False, False), (True, False), (False, True), (True, True)]


def _inputs(rng):
    query = rng.standard_normal((B, 1, E)).astype(np.float32)
    keys = rng.standard_normal((B, T, E)).astype(np.float32)
    lengths = np.array([0, 1, T, T + 3, -1, 3, 2, 4], np.int32)[:, None]
    return query, keys, lengths


def _twins(rng, units, activation, normalize, return_score, masking=False):
    """Both layers, built, with DeepCTR's random weights copied into ours."""
    ours = AttentionSequencePoolingLayer(units, activation, normalize, return_score, masking)
    theirs = DeepCTRAttention(units, activation, normalize, return_score, masking)
    return ours, theirs


def _outputs_and_grads(layer, inputs, call_kwargs, differentiate=(0, 1)):
    tensors = [tf.constant(x) for x in inputs]
    with tf.GradientTape() as tape:
        for i in differentiate:
            tape.watch(tensors[i])
        out = layer(tensors, **call_kwargs)
        upstream = np.random.default_rng(7).standard_normal(out.shape.as_list())
        loss = tf.reduce_sum(out * tf.constant(upstream, out.dtype))
    sources = [tensors[i] for i in differentiate] + layer.trainable_weights
    return [out.numpy()] + [g.numpy() for g in tape.gradient(loss, sources)]


def _copy_weights(rng, ours, theirs, inputs, call_kwargs):
    theirs(inputs, **call_kwargs)  # DeepCTR builds its sub-layers on the first call
    ours(inputs, **call_kwargs)
    weights = [w + rng.standard_normal(w.shape).astype(np.float32) * 0.3
               for w in theirs.get_weights()]
    weights = [np.abs(w) if "variance" in v.name else w
               for w, v in zip(weights, theirs.weights)]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)


@pytest.mark.parametrize("normalize,return_score", COMBOS)
@pytest.mark.parametrize("units", [(80, 40), (64, 16), ()])
@pytest.mark.parametrize("activation", ["sigmoid", "relu", "dice"])
def test_matches_deepctr(rng, normalize, return_score, units, activation):
    inputs = list(_inputs(rng))
    ours, theirs = _twins(rng, units, activation, normalize, return_score)
    kwargs = {"training": True}
    _copy_weights(rng, ours, theirs, inputs, kwargs)
    assert [v.name.split("/")[-1] for v in ours.weights] == \
        [v.name.split("/")[-1] for v in theirs.weights]
    got = _outputs_and_grads(ours, inputs, kwargs)
    want = _outputs_and_grads(theirs, inputs, kwargs)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Dice's moving statistics were updated alike (training=True).
    for a, b in zip(ours.non_trainable_weights, theirs.non_trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("normalize", [False, True])
def test_explicit_mask_with_empty_rows_matches_deepctr(rng, impl, normalize):
    query, keys, _ = _inputs(rng)
    mask = rng.random((B, T)) < 0.5
    mask[0] = False
    mask[1] = True
    ours, theirs = _twins(rng, (6, 3), "sigmoid", normalize, False, masking=True)
    kwargs = {"mask": [None, tf.constant(mask)]}
    _copy_weights(rng, ours, theirs, [query, keys], kwargs)
    deepctr_ops.set_implementation(impl)
    got = _outputs_and_grads(ours, [query, keys], kwargs)
    want = _outputs_and_grads(theirs, [query, keys], kwargs)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    if normalize:  # the all-False row is the mean of all T keys
        np.testing.assert_allclose(got[0][0, 0], keys[0].mean(axis=0), rtol=1e-5)


def test_supports_masking_without_mask_is_a_value_error(rng):
    query, keys, _ = _inputs(rng)
    with pytest.raises(ValueError, match="masking"):
        AttentionSequencePoolingLayer(supports_masking=True)([query, keys])


@pytest.mark.parametrize("shapes,message", [
    ([(None, 1, 4), (None, 5, 4)], "list of 3 inputs"),
    ([(None, 1, 4), (None, 5, 4), (None, 1, 1)], "dimensions"),
    ([(None, 1, 4), (None, 5, 3), (None, 1)], "shape"),
    ([(None, 2, 4), (None, 5, 4), (None, 1)], "shape"),
])
def test_build_rejects_bad_shapes_like_deepctr(shapes, message):
    with pytest.raises(ValueError, match=message):
        AttentionSequencePoolingLayer().build(shapes)


def test_config_shapes_and_rebuild_from_config(rng):
    query, keys, lengths = _inputs(rng)
    layer = AttentionSequencePoolingLayer((6, 3), "relu", True, False, name="att")
    config = layer.get_config()
    for key, value in dict(att_hidden_units=(6, 3), att_activation="relu",
                           weight_normalization=True, return_score=False,
                           supports_masking=False).items():
        assert config[key] == value
    assert tuple(layer.compute_output_shape([(None, 1, E), (None, T, E), (None, 1)])) == \
        (None, 1, E)
    scores = AttentionSequencePoolingLayer(return_score=True)
    assert tuple(scores.compute_output_shape([(None, 1, E), (None, T, E), (None, 1)])) == \
        (None, 1, T)
    assert layer.compute_mask(None, None) is None
    out = layer([query, keys, lengths])
    assert out.shape == (B, 1, E)
    clone = AttentionSequencePoolingLayer.from_config(config)
    clone.build([(None, 1, E), (None, T, E), (None, 1)])
    assert len(clone.weights) == len(layer.weights) == 6
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone([query, keys, lengths]).numpy(), out.numpy())


def test_unknown_batch_and_lengths_shape_in_tf_function(rng):
    query, keys, lengths = _inputs(rng)
    layer = AttentionSequencePoolingLayer((4,), weight_normalization=True)

    @tf.function(input_signature=[tf.TensorSpec([None, 1, E]), tf.TensorSpec([None, T, E]),
                                  tf.TensorSpec([None, 1], tf.int32)])
    def f(q, k, n):
        return layer([q, k, n])

    np.testing.assert_allclose(f(query, keys, lengths).numpy(),
                               layer([query, keys, lengths]).numpy(), rtol=1e-6)


def _din_model(vocab=40, emb=8, t=6, seed=3):
    hist = keras.Input((t,), dtype="int32", name="hist")
    item = keras.Input((1,), dtype="int32", name="item")
    embedding = keras.layers.Embedding(
        vocab, emb, mask_zero=True,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=seed))
    keys = embedding(hist)
    query = embedding(item)
    pooled = AttentionSequencePoolingLayer((16, 8), weight_normalization=True,
                                           supports_masking=True)([query, keys])
    flat = keras.layers.Flatten()(keras.layers.Concatenate()([pooled, query]))
    hidden = keras.layers.Dense(16, activation="relu")(flat)
    out = keras.layers.Dense(1, activation="sigmoid")(hidden)
    return keras.Model([hist, item], out)


def test_din_style_model_trains_saves_and_reloads(rng, tmp_path):
    keras.utils.set_random_seed(0)
    hist = rng.integers(1, 40, size=(96, 6)).astype(np.int32)
    hist[np.arange(6)[None, :] >= rng.integers(0, 7, size=(96, 1))] = 0
    item = rng.integers(1, 40, size=(96, 1)).astype(np.int32)
    labels = (np.isin(item, hist[:, :3]).any(axis=1, keepdims=True)
              | (item % 3 == 0)).astype(np.float32)
    model = _din_model()
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    losses = model.fit([hist, item], labels, batch_size=32, epochs=4, shuffle=False,
                       verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    changed = [not np.array_equal(a, b) for a, b in zip(model.get_weights(), before)]
    assert all(changed)
    expected = model.predict([hist, item], verbose=0)
    for fmt in save_formats():
        (tmp_path / fmt).mkdir()
        loaded = save_and_load(model, fmt, tmp_path / fmt)
        np.testing.assert_allclose(loaded.predict([hist, item], verbose=0), expected,
                                   rtol=1e-5, atol=1e-6)


def test_activation_layer_class_runs_on_the_twin_like_deepctr(rng):
    # Keras has no 'prelu' string; DeepCTR instantiates a Layer class per hidden layer.
    inputs = list(_inputs(rng))
    ours = AttentionSequencePoolingLayer((4,), keras.layers.PReLU, True)
    theirs = DeepCTRAttention((4,), keras.layers.PReLU, True)
    _copy_weights(rng, ours, theirs, inputs, {})
    for a, b in zip(_outputs_and_grads(ours, inputs, {}), _outputs_and_grads(theirs, inputs, {})):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["sigmoid", "dice"])
def test_model_saved_with_deepctr_layer_loads_into_ours(rng, tmp_path, activation):
    hist = keras.Input((6,), dtype="int32")
    item = keras.Input((1,), dtype="int32")
    embedding = keras.layers.Embedding(30, 8, mask_zero=True)
    pooled = DeepCTRAttention((16, 8), activation, weight_normalization=True,
                              supports_masking=True)([embedding(item), embedding(hist)])
    model = keras.Model([hist, item], keras.layers.Dense(1)(keras.layers.Flatten()(pooled)))
    x = [rng.integers(0, 30, (10, 6)).astype(np.int32),
         rng.integers(1, 30, (10, 1)).astype(np.int32)]
    x[0][:2] = 0  # rows without history
    expected = model.predict(x, verbose=0)
    for fmt in save_formats():
        (tmp_path / fmt).mkdir()
        loaded = save_and_load(model, fmt, tmp_path / fmt)
        assert any(isinstance(layer, AttentionSequencePoolingLayer) for layer in loaded.layers)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
