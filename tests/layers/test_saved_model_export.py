"""Every custom-op layer in one model, exported as a SavedModel two ways
(tf.saved_model.save of a serving module, and the Keras export of this run's
Keras flavour), then loaded in a fresh process with deepctr_ops.load_saved_model:
outputs equal, gradients registered (one fine-tuning step gives the same
gradients as before export). Without the package, loading fails with
TensorFlow's message naming the `DeepCTR>` op (the documented one)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.compat import IS_KERAS_3, keras
from deepctr_ops.layers.embedding_pooling import EmbeddingSequencePooling
from deepctr_ops.layers.sequence import (
    AttentionSequencePoolingLayer,
    DynamicGRU,
    SequencePoolingLayer,
    Transformer,
)
from deepctr_ops.saved_model import saved_model_ops

T, VOCAB, EMB = 6, 30, 8


def _model():
    ids = keras.Input(shape=(T,), dtype="int32", name="ids")
    lengths = keras.Input(shape=(1,), dtype="int32", name="lengths")
    init = keras.initializers.RandomNormal(seed=3)
    embedded = keras.layers.Embedding(VOCAB, EMB, mask_zero=True, embeddings_initializer=init)(ids)
    masked_mean = SequencePoolingLayer("mean", supports_masking=True)(embedded)   # Mask op.
    length_max = SequencePoolingLayer("max")([embedded, lengths])                 # Lengths op.
    attended = Transformer(att_embedding_size=2, head_num=4, use_positional_encoding=False,
                           blinding=True)([embedded, embedded, lengths, lengths])  # Softmax op.
    query = keras.layers.Lambda(lambda x: x[:, :1])(embedded)
    din = AttentionSequencePoolingLayer((8, 4), weight_normalization=True)(
        [query, embedded, lengths])                                               # DIN op.
    evolved = DynamicGRU(EMB, gru_type="GRU", return_sequence=True)([embedded, lengths])
    scores = AttentionSequencePoolingLayer((8,), return_score=True)([query, evolved, lengths])
    augru = DynamicGRU(EMB, gru_type="AUGRU", return_sequence=False)(               # GRU op.
        [evolved, lengths, keras.layers.Permute((2, 1))(scores)])
    fused = EmbeddingSequencePooling(VOCAB, EMB, "max", mask_zero=True,             # Fused
                                     embeddings_initializer=init)                   # lookup
    fused_ids, fused_lengths = fused(ids), fused([ids, lengths])                    # + pool.
    merged = keras.layers.Concatenate()([masked_mean, length_max, attended, din, augru,
                                         fused_ids, fused_lengths])
    out = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed=4))(
        keras.layers.Flatten()(merged))
    return keras.Model([ids, lengths], out)


class _Serving(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.weights_list = list(model.trainable_weights)

    @tf.function(input_signature=[tf.TensorSpec([None, T], tf.int32),
                                  tf.TensorSpec([None, 1], tf.int32)])
    def serve(self, ids, lengths):
        return self.model([ids, lengths])


def _data():
    rng = np.random.default_rng(0)
    lengths = np.array([[0], [1], [3], [6], [4]], np.int32)
    ids = rng.integers(1, VOCAB, size=(5, T)).astype(np.int32)
    ids[np.arange(T)[None, :] >= lengths] = 0
    return ids, lengths


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=240)


def _export(model, kind: str, path: str) -> None:
    if kind == "module":
        tf.saved_model.save(_Serving(model), path)
    elif IS_KERAS_3:
        model.export(path, verbose=False)
    else:
        model.save(path, save_format="tf")


@pytest.mark.parametrize("kind", ["module", "keras"])
def test_every_custom_op_layer_round_trips_in_a_fresh_process(kind, tmp_path):
    model = _model()
    ids, lengths = _data()
    with tf.GradientTape() as tape:
        out = model([ids, lengths])
        loss = tf.reduce_sum(out ** 2)
    grads = tape.gradient(loss, model.trainable_weights)
    path = str(tmp_path / "model")
    _export(model, kind, path)
    assert {"DeepCTR>SequencePool", "DeepCTR>MaskedSequencePool", "DeepCTR>AttentionSoftmax",
            "DeepCTR>AttentionPool", "DeepCTR>DynamicGru"} <= saved_model_ops(path)
    expected = str(tmp_path / "expected.npz")
    np.savez(expected, ids=ids, lengths=lengths, out=out.numpy(),
             **{f"grad{i}": tf.convert_to_tensor(g).numpy() for i, g in enumerate(grads)})

    if kind == "module":
        call = "loaded.serve(data['ids'], data['lengths'])"
    elif IS_KERAS_3:  # Keras 3's export: one `serve` endpoint taking the input list.
        call = "loaded.serve([data['ids'], data['lengths']])"
    else:
        call = ("loaded.signatures['serving_default'](ids=tf.constant(data['ids']), "
                "lengths=tf.constant(data['lengths']))")
    weights = "loaded.weights_list" if kind == "module" else "loaded.trainable_variables"
    result = _run(f"""
        import numpy as np, tensorflow as tf
        import deepctr_ops
        data = np.load({expected!r})
        loaded = deepctr_ops.load_saved_model({path!r})
        def call():
            out = {call}
            return list(out.values())[0] if isinstance(out, dict) else out
        weights = list({weights})
        with tf.GradientTape() as tape:
            out = call()
            loss = tf.reduce_sum(out ** 2)
        grads = tape.gradient(loss, weights)
        np.testing.assert_allclose(out.numpy(), data["out"], rtol=1e-5, atol=1e-6)
        got = sorted(float(np.abs(tf.convert_to_tensor(g).numpy()).sum()) for g in grads)
        want = sorted(float(np.abs(data[k]).sum()) for k in data.files if k.startswith("grad"))
        np.testing.assert_allclose(got, want, rtol=1e-4)
        for w, g in zip(weights, grads):
            w.assign_sub(0.1 * tf.convert_to_tensor(g))
        assert not np.allclose(call().numpy(), data["out"])
        print("fine-tuned", len(weights))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fine-tuned" in result.stdout

    without_package = _run(f"""
        import numpy as np, tensorflow as tf
        data = np.load({expected!r})
        loaded = tf.saved_model.load({path!r})
        {call}
    """)
    assert without_package.returncode != 0
    assert "Op type not registered 'DeepCTR>" in without_package.stderr
