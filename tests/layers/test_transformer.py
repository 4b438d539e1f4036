"""Transformer: parity with DeepCTR (tf_keras) and with its float64 NumPy statement (both modes)."""

from __future__ import annotations

import deepctr_ops
import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf
from deepctr_ops.compat import IS_KERAS_3
from deepctr_ops.layers.sequence import Transformer
from helpers import ragged_lengths, value_and_input_grads

B, T, H, D = 7, 6, 2, 4
E = H * D

BASE = dict(att_embedding_size=D, head_num=H, use_positional_encoding=True, use_res=True,
            use_feed_forward=True, use_layer_norm=False, blinding=True,
            attention_type="scaled_dot_product", output_type="mean")


def _cfg(**kw):
    return {**BASE, **kw}


# A covering set of options: each attention type with blinding on/off, every
# output type, every residual/FFN/LN combination, PE on/off, both mask modes.
CONFIGS = [
    _cfg(),
    _cfg(blinding=False),
    _cfg(output_type="sum"),
    _cfg(output_type=None),
    _cfg(use_res=False),
    _cfg(use_feed_forward=False),
    _cfg(use_layer_norm=True),
    _cfg(use_layer_norm=True, use_res=False),
    _cfg(use_layer_norm=True, use_feed_forward=False, output_type=None),
    _cfg(use_res=False, use_feed_forward=False, use_positional_encoding=False),
    _cfg(use_positional_encoding=False, blinding=False, output_type=None),
    _cfg(attention_type="cos"),
    _cfg(attention_type="cos", blinding=False, output_type=None, use_layer_norm=True),
    _cfg(attention_type="ln"),
    _cfg(attention_type="ln", blinding=False, output_type="sum"),
    _cfg(attention_type="additive"),
    _cfg(attention_type="additive", blinding=False, output_type=None, use_feed_forward=False),
    _cfg(att_embedding_size=1, head_num=E, attention_type="ln"),
    _cfg(att_embedding_size=E, head_num=1),
]
MASKED = [True, False]


def _ids(cfgs):
    out = []
    for c in cfgs:
        diff = {k: v for k, v in c.items() if BASE.get(k, object()) != v}
        out.append(",".join(f"{k}={v}" for k, v in diff.items()) or "defaults")
    return out


def _inputs(rng, masked: bool, scale: float = 1.0):
    q = (rng.standard_normal((B, T, E)) * scale).astype(np.float32)
    k = (rng.standard_normal((B, T, E)) * scale).astype(np.float32)
    if masked:
        q_valid = rng.random((B, T)) < 0.6
        k_valid = rng.random((B, T)) < 0.6
        q_valid[0] = k_valid[0] = False  # an empty row
        k_valid[1] = [True] + [False] * (T - 1)  # with blinding: query 0 has no eligible key
        q_valid[2] = k_valid[2] = True
        return [q, k], [q_valid, k_valid]
    q_len = ragged_lengths(rng, B, T)
    k_len = ragged_lengths(np.random.default_rng(5), B, T)[::-1].copy()
    return [q, k, q_len, k_len], None


def _valid_from(inputs, masks):
    if masks is not None:
        return masks
    lens = [np.clip(x.reshape(-1), 0, T) for x in inputs[2:]]
    return [np.arange(T)[None] < n[:, None] for n in lens]


def _random_weights(layer, rng, scale=0.3):
    """Modest random weights (so float32 logits stay accurate vs float64)."""
    return [(rng.standard_normal(w.shape) * scale).astype(np.float32)
            if w.shape[0] != T or len(w.shape) != 2 else w.numpy()  # keep PE tables
            for w in layer.weights]


def _call(layer, inputs, masks, training=None):
    def fn(xs):
        if masks is None:
            return layer(xs, training=training)
        return layer(xs, mask=[tf.constant(m) for m in masks], training=training)
    return fn


def _ours(cfg, masked, input_shapes):
    layer = Transformer(**cfg, supports_masking=masked)
    layer.build(input_shapes)
    return layer


def _shapes(masked):
    seq = (None, T, E)
    return [seq, seq] if masked else [seq, seq, (None, 1), (None, 1)]


@pytest.mark.parametrize("masked", MASKED, ids=["mask", "lengths"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids(CONFIGS))
def test_matches_numpy_reference(cfg, masked, rng):
    inputs, masks = _inputs(rng, masked)
    layer = _ours(cfg, masked, _shapes(masked))
    weights = _random_weights(layer, rng)
    layer.set_weights(weights)
    out = _call(layer, inputs, masks)(inputs).numpy()
    q_valid, k_valid = _valid_from(inputs, masks)
    expected = ref.transformer(
        dict(zip(ref.transformer_weight_names(cfg), [w.astype(np.float64) for w in weights])),
        cfg, inputs[0], inputs[1], q_valid, k_valid)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


@pytest.mark.skipif(IS_KERAS_3, reason="DeepCTR's Transformer cannot run under Keras 3 (spec 11)")
@pytest.mark.parametrize("masked", MASKED, ids=["mask", "lengths"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids(CONFIGS))
def test_matches_deepctr_outputs_and_gradients(cfg, masked, rng):
    from deepctr.layers.sequence import Transformer as DeepCTRTransformer

    inputs, masks = _inputs(rng, masked)
    theirs = DeepCTRTransformer(**cfg, supports_masking=masked)
    _call(theirs, inputs, masks)(inputs)  # builds it (and its lazy sub-layers)
    ours = _ours(cfg, masked, _shapes(masked))
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    weights = [w * np.float32(0.5) if w.shape[0] != T else w for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    # The names in DeepCTR's order are what the NumPy statement reads.
    names = [w.name.split("/")[-1].split(":")[0] for w in theirs.weights]
    assert [n.split("/")[-1] if n not in ("lookup_table",) else n for n in names] == [
        n.split("/")[-1] if "_pe" not in n else "lookup_table"
        for n in ref.transformer_weight_names(cfg)]

    diff = (0, 1)
    out_t, grads_t = value_and_input_grads(_call(theirs, inputs, masks), inputs, diff)
    for impl in ("op", "tf"):
        with deepctr_ops.implementation(impl):
            out_o, grads_o = value_and_input_grads(_call(ours, inputs, masks), inputs, diff)
        np.testing.assert_allclose(out_o, out_t, rtol=1e-5, atol=1e-5 * np.abs(out_t).max())
        for g_o, g_t in zip(grads_o, grads_t):
            np.testing.assert_allclose(g_o, g_t, rtol=1e-5, atol=1e-5 * np.abs(g_t).max())

    # Weight gradients too.
    def weight_grads(layer):
        with tf.GradientTape() as tape:
            out = _call(layer, inputs, masks)([tf.constant(x) for x in inputs])
            loss = tf.reduce_sum(out * np.random.default_rng(3).standard_normal(out.shape))
        return tape.gradient(loss, layer.trainable_weights)

    pairs = list(zip(weight_grads(ours), weight_grads(theirs)))
    assert [g_o is None for g_o, _ in pairs] == [g_t is None for _, g_t in pairs]
    pairs = [(tf.convert_to_tensor(g_o).numpy(), tf.convert_to_tensor(g_t).numpy())
             for g_o, g_t in pairs if g_t is not None]
    # Some weight gradients are analytically 0 (e.g. att_ln_k's beta shifts every
    # logit of a row equally): compare against the scale of all weight gradients.
    scale = max(np.abs(g_t).max() for _, g_t in pairs)
    for g_o, g_t in pairs:
        np.testing.assert_allclose(g_o, g_t, rtol=1e-5, atol=1e-6 * scale)

    # And the NumPy statement that the Keras 3 run relies on matches DeepCTR.
    q_valid, k_valid = _valid_from(inputs, masks)
    expected = ref.transformer(
        dict(zip(ref.transformer_weight_names(cfg), [w.astype(np.float64) for w in weights])),
        cfg, inputs[0], inputs[1], q_valid, k_valid)
    np.testing.assert_allclose(out_t, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
