"""BiLSTM: parity with DeepCTR's layer (it runs in both Keras modes) and the NumPy statement."""

from __future__ import annotations

import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf
from deepctr_ops.compat import IS_KERAS_3, keras
from deepctr_ops.layers.sequence import BiLSTM
from helpers import value_and_input_grads

B, T, E = 4, 6, 5
MERGES = ["fw", "bw", "sum", "mul", "ave", "concat", None]


def _data(rng):
    x = rng.standard_normal((B, T, E)).astype(np.float32)
    x[1, 3:] = 0.0  # padded tail
    x[2, :2] = 0.0  # padded head
    x[3, 2] = 0.0  # a hole
    return x


def _deepctr_weights_in_our_order(theirs, layers):
    weights = theirs.get_weights()
    return BiLSTM.weights_from_keras3_order(weights, layers) if IS_KERAS_3 else weights


def _pair(rng, x, units, **kw):
    """DeepCTR's layer and ours with the same (DeepCTR's) weights."""
    from deepctr.layers.sequence import BiLSTM as DeepCTRBiLSTM

    theirs = DeepCTRBiLSTM(units, **kw)
    theirs(tf.constant(x))  # DeepCTR builds its LSTMs on first call
    theirs.set_weights([w + rng.standard_normal(w.shape).astype(np.float32) * 0.2
                        for w in theirs.get_weights()])
    ours = BiLSTM(units, **kw)
    ours.build(x.shape)
    ours.set_weights(_deepctr_weights_in_our_order(theirs, kw.get("layers", 2)))
    return theirs, ours


def _as_list(out):
    return out if isinstance(out, list) else [out]


@pytest.mark.parametrize("merge_mode", MERGES)
@pytest.mark.parametrize("layers,res_layers", [(1, 0), (2, 0), (2, 1), (3, 2)])
def test_eager_matches_deepctr(merge_mode, layers, res_layers, rng, capsys):
    x = _data(rng)
    theirs, ours = _pair(rng, x, E, layers=layers, res_layers=res_layers, merge_mode=merge_mode)
    diff = (0,)
    if merge_mode is None:
        def fn(layer):
            return lambda xs: tf.concat(layer(xs[0]), -1)
    else:
        def fn(layer):
            return lambda xs: layer(xs[0])
    out_t, (g_t,) = value_and_input_grads(fn(theirs), [x], diff)
    capsys.readouterr()
    out_o, (g_o,) = value_and_input_grads(fn(ours), [x], diff)
    np.testing.assert_allclose(out_o, out_t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_o, g_t, rtol=1e-5, atol=1e-6)
    # The NumPy statement (unmasked: DeepCTR's eager call sees no mask).
    w = [v.astype(np.float64) for v in ours.get_weights()]
    fw = [tuple(w[3 * i:3 * i + 3]) for i in range(layers)]
    bw = [tuple(w[3 * (layers + i):3 * (layers + i) + 3]) for i in range(layers)]
    expected = ref.bilstm(fw, bw, x, res_layers, merge_mode)
    expected = np.concatenate(expected, -1) if merge_mode is None else expected
    np.testing.assert_allclose(out_o, expected, rtol=1e-4, atol=1e-5)
    assert capsys.readouterr().out == ""  # DeepCTR prints merge_mode; we do not.


def _weight_grads(layer, x, mask=None):
    """d(sum(out * upstream)) / d weights, in the layer's get_weights() order."""
    with tf.GradientTape() as tape:
        out = layer(tf.constant(x), mask=mask) if mask is not None else layer(tf.constant(x))
        out = tf.concat(out, -1) if isinstance(out, list) else out
        upstream = tf.constant(np.random.default_rng(3).standard_normal(out.shape.as_list()),
                               out.dtype)
        loss = tf.reduce_sum(out * upstream)
    return [g.numpy() for g in tape.gradient(loss, layer.trainable_weights)]


@pytest.mark.parametrize("merge_mode", ["ave", "concat", "mul", None])
@pytest.mark.parametrize("layers,res_layers", [(1, 0), (2, 0), (2, 1), (3, 2)])
def test_weight_gradients_match_deepctr(merge_mode, layers, res_layers, rng, capsys):
    x = _data(rng)
    theirs, ours = _pair(rng, x, E, layers=layers, res_layers=res_layers, merge_mode=merge_mode)
    g_t = _weight_grads(theirs, x)
    if IS_KERAS_3:  # DeepCTR's Keras 3 weight order is interleaved; ours is tf_keras'.
        g_t = BiLSTM.weights_from_keras3_order(g_t, layers)
    g_o = _weight_grads(ours, x)
    assert [g.shape for g in g_o] == [g.shape for g in g_t]
    for a, b in zip(g_o, g_t):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    capsys.readouterr()


@pytest.mark.parametrize("layers,res_layers", [(1, 0), (2, 0), (2, 1), (2, 2), (3, 2)])
def test_functional_masked_matches_deepctr(layers, res_layers, rng, capsys):
    from deepctr.layers.sequence import BiLSTM as DeepCTRBiLSTM

    x = _data(rng)
    inp = keras.Input((T, E))
    masked = keras.layers.Masking(0.0)(inp)
    theirs = DeepCTRBiLSTM(E, layers=layers, res_layers=res_layers, merge_mode="concat")
    model_t = keras.Model(inp, theirs(masked))
    model_t.predict(x, verbose=0)  # Keras 3: DeepCTR's LSTMs get weights on first run
    ours = BiLSTM(E, layers=layers, res_layers=res_layers, merge_mode="concat")
    model_o = keras.Model(inp, ours(masked))
    ours.set_weights(_deepctr_weights_in_our_order(theirs, layers))
    out_t = model_t.predict(x, verbose=0)
    out_o = model_o.predict(x, verbose=0)
    np.testing.assert_allclose(out_o, out_t, rtol=1e-5, atol=1e-6)
    # The mask changes the numbers (it reaches the LSTMs) ...
    assert np.abs(out_o - ours(tf.constant(x)).numpy()).max() > 1e-3
    # ... as the NumPy statement says: level i is masked until a residual level.
    w = [v.astype(np.float64) for v in ours.get_weights()]
    fw = [tuple(w[3 * i:3 * i + 3]) for i in range(layers)]
    bw = [tuple(w[3 * (layers + i):3 * (layers + i) + 3]) for i in range(layers)]
    valid = np.any(x != 0, axis=-1)
    masks, current = [], valid
    for i in range(layers):
        masks.append(current)
        if i >= layers - res_layers:
            current = None
    expected = ref.bilstm(fw, bw, x, res_layers, "concat", masks)
    np.testing.assert_allclose(out_o, expected, rtol=1e-4, atol=1e-5)
    # Gradients through the masked model.
    x_t = tf.constant(x)
    grads = []
    for model in (model_t, model_o):
        with tf.GradientTape() as tape:
            tape.watch(x_t)
            loss = tf.reduce_sum(model(x_t) ** 2)
        grads.append(tape.gradient(loss, x_t).numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-5)
    # Weight gradients through the masked models.
    weight_grads = []
    for model, layer in ((model_t, theirs), (model_o, ours)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x_t) ** 2)
        weight_grads.append([g.numpy() for g in tape.gradient(loss, layer.trainable_weights)])
    g_t, g_o = weight_grads
    if IS_KERAS_3:
        g_t = BiLSTM.weights_from_keras3_order(g_t, layers)
    for a, b in zip(g_o, g_t):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    capsys.readouterr()


def test_explicit_mask_is_honoured(rng):
    x = _data(rng)
    layer = BiLSTM(E, layers=2)
    mask = tf.constant(np.any(x != 0, axis=-1))
    inp = keras.Input((T, E))
    model = keras.Model(inp, layer(keras.layers.Masking(0.0)(inp)))
    np.testing.assert_allclose(layer(tf.constant(x), mask=mask).numpy(),
                               model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_weights_order_shapes_and_training_dropout(rng):
    layer = BiLSTM(3, layers=2, dropout_rate=0.5)
    x = tf.constant(_data(rng))
    out = layer(x)
    assert tuple(out.shape) == (B, T, 3)
    shapes = [tuple(w.shape) for w in layer.weights]
    assert shapes == [(E, 12), (3, 12), (12,), (3, 12), (3, 12), (12,),
                      (E, 12), (3, 12), (12,), (3, 12), (3, 12), (12,)]
    assert [w.name.split("/")[-1].split(":")[0] for w in layer.weights][:3] == [
        "kernel", "recurrent_kernel", "bias"]
    np.testing.assert_array_equal(layer.get_weights()[2], np.ones(12, np.float32))
    # Training applies input dropout; inference does not.
    assert np.abs(layer(x, training=True).numpy() - out.numpy()).max() > 0
    np.testing.assert_array_equal(layer(x, training=False).numpy(), out.numpy())


@pytest.mark.parametrize("merge_mode,last", [("concat", 6), ("ave", 3), ("fw", 3), (None, 3)])
def test_output_shapes(merge_mode, last, capsys):
    layer = BiLSTM(3, merge_mode=merge_mode)
    shape = layer.compute_output_shape((None, T, E))
    out = layer(tf.zeros((2, T, E)))
    if merge_mode is None:
        assert [tuple(s) for s in shape] == [(None, T, last)] * 2
        assert [tuple(o.shape) for o in out] == [(2, T, last)] * 2
    else:
        assert tuple(shape) == (None, T, last) and tuple(out.shape) == (2, T, last)
    assert capsys.readouterr().out == ""


def test_keras3_order_conversion():
    fw0, bw0, fw1, bw1 = ([f"{n}{i}" for i in range(3)] for n in ("f0", "b0", "f1", "b1"))
    assert BiLSTM.weights_from_keras3_order(fw0 + bw0 + fw1 + bw1, 2) == fw0 + fw1 + bw0 + bw1


@pytest.mark.parametrize("kwargs,match", [
    (dict(units=4, merge_mode="max"), "merge"), (dict(units=0), "units"),
    (dict(units=4, layers=0), "layers"), (dict(units=4, res_layers=3), "res_layers"),
    (dict(units=4, dropout_rate=1.5), "dropout_rate"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BiLSTM(**kwargs)


def test_bad_shapes():
    with pytest.raises(ValueError, match="3 dimensions"):
        BiLSTM(4).build((None, 5))
    with pytest.raises(ValueError, match="res_layers"):
        BiLSTM(4, res_layers=1).build((None, T, E))
