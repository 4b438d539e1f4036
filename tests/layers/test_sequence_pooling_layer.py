"""SequencePoolingLayer against DeepCTR's (the oracle), in the Keras flavour
this run uses (CI runs tests/layers under Keras 3 and under tf_keras)."""

from __future__ import annotations

import os

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr.layers.sequence import SequencePoolingLayer as DeepCTRPooling
from deepctr_ops.compat import IS_KERAS_3, keras
from deepctr_ops.layers.sequence import SequencePoolingLayer
from helpers import ragged_lengths, save_and_load, save_formats, value_and_input_grads

MODES = ["sum", "mean", "max"]


@pytest.mark.parametrize("impl", ["op", "tf"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("length_dtype", [np.int32, np.int64, np.float32])
def test_matches_deepctr(rng, impl, mode, length_dtype):
    b, t, e = 20, 8, 6
    x = rng.standard_normal((b, t, e)).astype(np.float32)
    lengths = ragged_lengths(rng, b, t).astype(length_dtype)
    if length_dtype == np.float32:
        lengths[5:8, 0] = [3.5, 0.25, 7.9]
    deepctr_ops.set_implementation(impl)
    ours, (our_grad,) = value_and_input_grads(SequencePoolingLayer(mode), [x, lengths])
    theirs, (their_grad,) = value_and_input_grads(DeepCTRPooling(mode), [x, lengths])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(our_grad, their_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_explicit_non_prefix_mask_matches_deepctr(rng, mode):
    x = rng.standard_normal((10, 7, 3)).astype(np.float32)
    mask = rng.random((10, 7)) < 0.4
    mask[0] = False
    ours, (our_grad,) = value_and_input_grads(
        lambda xs: SequencePoolingLayer(mode, supports_masking=True)(xs[0], mask=xs[1]), [x, mask])
    theirs, (their_grad,) = value_and_input_grads(
        lambda xs: DeepCTRPooling(mode, supports_masking=True)(xs[0], mask=xs[1]), [x, mask])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(our_grad, their_grad, rtol=1e-5, atol=1e-6)


def _embedding_pool_model(layer_cls, mode, vocab=30, emb=4, t=6, seed=5):
    ids = keras.Input(shape=(t,), dtype="int32")
    embedded = keras.layers.Embedding(vocab, emb, mask_zero=True,
                                      embeddings_initializer=keras.initializers.RandomNormal(
                                          seed=seed))(ids)
    pooled = layer_cls(mode, supports_masking=True)(embedded)
    out = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(
        keras.layers.Flatten()(pooled))
    return keras.Model(ids, out)


@pytest.mark.parametrize("mode", MODES)
def test_keras_mask_from_embedding_trains_like_deepctr(rng, mode):
    ids = rng.integers(0, 30, size=(64, 6)).astype(np.int32)
    ids[:5] = 0  # Rows that are all padding.
    ids[5:20, 3:] = 0
    y = rng.random((64, 1)).astype(np.float32)
    models = [_embedding_pool_model(cls, mode) for cls in (SequencePoolingLayer, DeepCTRPooling)]
    models[1].set_weights(models[0].get_weights())
    for m in models:
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        m.fit(ids, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(models[0].predict(ids, verbose=0), models[1].predict(ids, verbose=0),
                               rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_supports_masking_without_mask_is_a_value_error():
    with pytest.raises(ValueError, match="masking"):
        SequencePoolingLayer("sum", supports_masking=True)(tf.ones([2, 3, 4]))


def test_bad_mode_names_all_modes():
    with pytest.raises(ValueError, match="'sum', 'mean', 'max'"):
        SequencePoolingLayer("median")


@pytest.mark.parametrize("mode", MODES)
def test_ragged_input_equals_padded_with_lengths(rng, mode):
    row_lengths = np.array([2, 0, 5, 1], np.int64)
    flat = rng.standard_normal((int(row_lengths.sum()), 3)).astype(np.float32)
    rt = tf.RaggedTensor.from_row_lengths(flat, row_lengths)
    dense = rt.to_tensor(shape=[4, 6, 3])
    ragged_out = SequencePoolingLayer(mode)(rt)
    dense_out = SequencePoolingLayer(mode)([dense, row_lengths[:, None]])
    np.testing.assert_allclose(ragged_out.numpy(), dense_out.numpy(), rtol=1e-6)


def test_config_and_shapes():
    layer = SequencePoolingLayer("max", supports_masking=False, name="pool")
    config = layer.get_config()
    assert config["mode"] == "max" and config["supports_masking"] is False
    clone = SequencePoolingLayer.from_config(config)
    assert clone.mode == "max" and clone.name == "pool"
    assert tuple(layer.compute_output_shape([(None, 7, 5), (None, 1)])) == (None, 1, 5)
    masked = SequencePoolingLayer("sum", supports_masking=True)
    assert tuple(masked.compute_output_shape((None, 7, 5))) == (None, 1, 5)
    assert layer.compute_mask(None, None) is None
    out = layer([tf.ones([2, 7, 5]), tf.constant([[1], [9]])])
    assert out.shape == (2, 1, 5) and layer.seq_len_max == 7


def test_tf_function_and_unknown_batch():
    layer = SequencePoolingLayer("mean")

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 2]), tf.TensorSpec([None, 1], tf.int32)])
    def f(x, lengths):
        return layer([x, lengths])

    out = f(tf.ones([3, 4, 2]), tf.constant([[0], [2], [4]]))
    np.testing.assert_allclose(out.numpy()[:, 0, 0], [0.0, 1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_xla_jit_compile_falls_back_to_the_twin(rng, mode):
    x = rng.standard_normal((5, 4, 3)).astype(np.float32)
    lengths = np.array([[0], [1], [4], [9], [2]], np.int32)
    layer = SequencePoolingLayer(mode)

    @tf.function(jit_compile=True)
    def f(x, lengths):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer([x, lengths])
        return out, tape.gradient(out, x)

    out, grad = f(tf.constant(x), tf.constant(lengths))
    ref, ref_grad = value_and_input_grads(DeepCTRPooling(mode), [x, lengths])
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert grad.shape == x.shape
    assert "DeepCTR>" not in str(f.experimental_get_compiler_ir(tf.constant(x),
                                                              tf.constant(lengths))("hlo"))


def _functional_model(t=5, e=3):
    values = keras.Input(shape=(t, e))
    lengths = keras.Input(shape=(1,), dtype="int32")
    pooled = SequencePoolingLayer("mean", name="pool")([values, lengths])
    out = keras.layers.Dense(1)(keras.layers.Flatten()(pooled))
    return keras.Model([values, lengths], out)


@pytest.mark.parametrize("fmt", save_formats())
def test_save_and_load_round_trip(tmp_path, rng, fmt):
    model = _functional_model()
    x = rng.standard_normal((8, 5, 3)).astype(np.float32)
    lengths = rng.integers(0, 6, size=(8, 1)).astype(np.int32)
    model.compile(optimizer="sgd", loss="mse")
    model.fit([x, lengths], np.ones((8, 1)), epochs=1, verbose=0)
    expected = model.predict([x, lengths], verbose=0)
    loaded = save_and_load(model, fmt, tmp_path)
    assert isinstance(loaded.get_layer("pool"), SequencePoolingLayer)
    np.testing.assert_allclose(loaded.predict([x, lengths], verbose=0), expected, rtol=1e-6)


@pytest.mark.skipif(not IS_KERAS_3, reason="jit_compile='auto' is a Keras 3 feature")
def test_keras3_auto_jit_is_declined_while_custom_ops_are_used():
    from keras.src.trainers.trainer import model_supports_jit

    def model():
        v = keras.Input((5, 3))
        n = keras.Input((1,), dtype="int32")
        pooled = SequencePoolingLayer("sum")([v, n])
        return keras.Model([v, n], keras.layers.Dense(1)(keras.layers.Flatten()(pooled)))

    assert not model_supports_jit(model())
    deepctr_ops.set_implementation("tf")
    assert model_supports_jit(model())


def test_a_model_saved_with_deepctr_layers_loads_onto_ours(tmp_path, rng):
    from deepctr.layers.sequence import WeightedSequenceLayer as DeepCTRWeighted

    values = keras.Input(shape=(5, 3))
    lengths = keras.Input(shape=(1,), dtype="int32")
    weights = keras.Input(shape=(5, 1))
    weighted = DeepCTRWeighted(True, name="weighted")([values, lengths, weights])
    pooled = DeepCTRPooling("max", name="pool")([weighted, lengths])
    out = keras.layers.Dense(1)(keras.layers.Flatten()(pooled))
    model = keras.Model([values, lengths, weights], out)
    inputs = [rng.standard_normal((6, 5, 3)).astype(np.float32),
              np.array([[0], [1], [5], [7], [2], [3]], np.int32),
              rng.standard_normal((6, 5, 1)).astype(np.float32)]
    expected = model.predict(inputs, verbose=0)
    path = os.path.join(tmp_path, "deepctr_model.keras" if IS_KERAS_3 else "deepctr_model.h5")
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects=deepctr_ops.custom_objects)
    assert type(loaded.get_layer("pool")) is SequencePoolingLayer
    assert type(loaded.get_layer("weighted")).__module__.startswith("deepctr_ops")
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), expected, rtol=1e-5, atol=1e-6)
