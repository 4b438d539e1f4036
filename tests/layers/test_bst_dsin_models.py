"""BST-style and DSIN-style functional models built from deepctr-ops layers train with `fit`
and save/load, in both Keras modes."""

from __future__ import annotations

import numpy as np
from deepctr_ops.compat import keras
from deepctr_ops.layers.sequence import (
    BiasEncoding,
    BiLSTM,
    SequencePoolingLayer,
    Transformer,
)
from helpers import save_and_load, save_formats

B, T, E, VOCAB = 64, 8, 8, 30


def _bst_model():
    """BST: self-attention over the behaviour sequence with PE, res, FFN, LN, no blinding."""
    hist = keras.Input((T,), dtype="int32", name="hist")
    hist_len = keras.Input((1,), dtype="int32", name="hist_len")
    emb = keras.layers.Embedding(VOCAB, E)(hist)
    att = Transformer(att_embedding_size=E // 2, head_num=2, dropout_rate=0.1,
                      use_layer_norm=True, blinding=False, output_type=None)(
        [emb, emb, hist_len, hist_len])
    pooled = SequencePoolingLayer("mean")([att, hist_len])
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(pooled))
    return keras.Model([hist, hist_len], out)


def _dsin_model(sessions=2):
    """DSIN: bias encoding, masked self-attention per session, BiLSTM over sessions."""
    ids = [keras.Input((T,), dtype="int32", name=f"sess_{i}") for i in range(sessions)]
    embedding = keras.layers.Embedding(VOCAB, E, mask_zero=True)
    embs = [embedding(x) for x in ids]
    biased = BiasEncoding(sessions)(embs)
    transformer = Transformer(E // 4, 4, use_positional_encoding=False, use_layer_norm=False,
                              supports_masking=True, blinding=True)
    interests = [transformer([x, x]) for x in biased]
    stacked = keras.layers.Concatenate(axis=1)(interests)  # (B, sessions, E)
    lstm = BiLSTM(E, layers=2, res_layers=0, dropout_rate=0.2)(stacked)
    flat = keras.layers.Flatten()(keras.layers.Concatenate()([stacked, lstm]))
    out = keras.layers.Dense(1, activation="sigmoid")(flat)
    return keras.Model(ids, out)


def _fit_and_reload(model, data, labels, tmp_path):
    model.compile("adam", "binary_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(data, labels, batch_size=16, epochs=3, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    after = model.get_weights()
    assert len(after) == len(before)
    # Every weight of our layers was trained (got gradients).
    changed = [not np.array_equal(a, b) for a, b in zip(after, before)]
    assert sum(changed) >= len(changed) - 1
    expected = model.predict(data, verbose=0)
    loaded = save_and_load(model, save_formats()[0], tmp_path)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_bst_style_model_trains(rng, tmp_path):
    keras.utils.set_random_seed(0)  # Initializers and dropout too, in both Keras flavours.
    hist = rng.integers(1, VOCAB, size=(B, T)).astype(np.int32)
    lens = rng.integers(0, T + 1, size=(B, 1)).astype(np.int32)
    labels = (hist[:, :1] % 2).astype(np.float32)
    _fit_and_reload(_bst_model(), [hist, lens], labels, tmp_path)


def test_dsin_style_model_trains(rng, tmp_path):
    keras.utils.set_random_seed(0)
    sessions = []
    for _ in range(2):
        x = rng.integers(1, VOCAB, size=(B, T)).astype(np.int32)
        lens = rng.integers(0, T + 1, size=B)
        x[np.arange(T)[None, :] >= lens[:, None]] = 0
        sessions.append(x)
    labels = (sessions[0][:, :1] % 2).astype(np.float32)
    _fit_and_reload(_dsin_model(), sessions, labels, tmp_path)
