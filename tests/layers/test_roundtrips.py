"""get_config/from_config + set_weights, and model save/load, for KMaxPooling,
PositionEncoding, BiasEncoding, Transformer and BiLSTM, in both Keras modes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.compat import keras
from deepctr_ops.layers import sequence
from deepctr_ops.layers.sequence import (
    BiasEncoding,
    BiLSTM,
    KMaxPooling,
    PositionEncoding,
    Transformer,
)
from helpers import save_and_load, save_formats

B, T, E = 5, 6, 8


def _seq(rng):
    return rng.standard_normal((B, T, E)).astype(np.float32)


def _lens(rng):
    return rng.integers(0, T + 1, size=(B, 1)).astype(np.int32)


def _transformer_model(rng, **kw):
    q, k = keras.Input((T, E)), keras.Input((T, E))
    ql, kl = keras.Input((1,), dtype="int32"), keras.Input((1,), dtype="int32")
    out = Transformer(att_embedding_size=4, head_num=2, **kw)([q, k, ql, kl])
    return keras.Model([q, k, ql, kl], out), [_seq(rng), _seq(rng), _lens(rng), _lens(rng)]


def _masked_transformer_model(rng, **kw):
    ids = keras.Input((T,), dtype="int32")
    emb = keras.layers.Embedding(10, E, mask_zero=True)(ids)
    out = Transformer(att_embedding_size=2, head_num=4, supports_masking=True,
                      attention_type="additive", use_layer_norm=True, **kw)([emb, emb])
    x = rng.integers(0, 10, size=(B, T)).astype(np.int32)
    x[0] = 0
    return keras.Model(ids, out), [x]


def _bias_model(rng):
    xs = [keras.Input((T, E)) for _ in range(3)]
    outs = BiasEncoding(3)(xs)
    return keras.Model(xs, keras.layers.Concatenate(axis=1)(outs)), [_seq(rng) for _ in range(3)]


def _pe_model(rng):
    x = keras.Input((T, E))
    return keras.Model(x, PositionEncoding(zero_pad=True)(x)), [_seq(rng)]


def _kmax_model(rng):
    x = keras.Input((T, E))
    return keras.Model(x, KMaxPooling(2, 1)(x)), [_seq(rng)]


def _bilstm_model(rng, **kw):
    x = keras.Input((T, E))
    masked = keras.layers.Masking(0.0)(x)
    out = BiLSTM(E, layers=2, res_layers=1, dropout_rate=0.1, **kw)(masked)
    data = _seq(rng)
    data[1, 3:] = 0.0
    return keras.Model(x, out), [data]


MODELS = {
    "transformer": lambda rng: _transformer_model(rng, use_layer_norm=True, output_type=None),
    "transformer_cos": lambda rng: _transformer_model(rng, attention_type="cos",
                                                      blinding=False),
    "transformer_masked": _masked_transformer_model,
    "bias_encoding": _bias_model,
    "position_encoding": _pe_model,
    "kmax_pooling": _kmax_model,
    "bilstm": lambda rng: _bilstm_model(rng, merge_mode="concat"),
    "bilstm_ave": lambda rng: _bilstm_model(rng),
}


def _perturb(model, rng):
    model.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) * 0.1
                       for w in model.get_weights()])


@pytest.mark.parametrize("name", list(MODELS))
def test_from_config_and_set_weights(name, rng):
    model, data = MODELS[name](rng)
    _perturb(model, rng)
    expected = model.predict(data, verbose=0)
    clone = keras.Model.from_config(model.get_config(), custom_objects=sequence.custom_objects)
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(data, verbose=0), expected, rtol=1e-6, atol=1e-6)


def _layer_roundtrip(layer, inputs):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build([tf.TensorShape(x.shape) for x in inputs] if isinstance(inputs, list)
                else tf.TensorShape(inputs.shape))
    assert len(clone.weights) == len(layer.weights)
    clone.set_weights(layer.get_weights())
    return clone


def test_layer_from_config_builds_every_sub_layer(rng):
    x = tf.constant(_seq(rng))
    lens = tf.constant(_lens(rng))
    for kw in (dict(attention_type="ln", use_layer_norm=True),
               dict(attention_type="additive"), dict(use_positional_encoding=False)):
        layer = Transformer(4, 2, output_type=None, **kw)
        inputs = [x, x, lens, lens]
        expected = layer(inputs).numpy()
        clone = _layer_roundtrip(layer, inputs)
        np.testing.assert_allclose(clone(inputs).numpy(), expected, rtol=1e-6, atol=1e-6)
    layer = BiLSTM(4, layers=2, merge_mode=None)
    expected = layer(x)
    clone = _layer_roundtrip(layer, x)
    for a, b in zip(clone(x), expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fmt", save_formats())
@pytest.mark.parametrize("name", list(MODELS))
def test_save_and_load(name, fmt, rng, tmp_path):
    model, data = MODELS[name](rng)
    _perturb(model, rng)
    expected = model.predict(data, verbose=0)
    loaded = save_and_load(model, fmt, tmp_path)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), expected, rtol=1e-6, atol=1e-6)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
