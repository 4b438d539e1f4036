"""BiasEncoding: DeepCTR parity (tf_keras), the NumPy statement (both modes), sess_max_count=1."""

from __future__ import annotations

import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf
from deepctr_ops.compat import IS_KERAS_3, keras
from deepctr_ops.layers.sequence import BiasEncoding

S, B, T, E = 3, 4, 5, 6


def _sessions(rng, count=S):
    return [rng.standard_normal((B, T, E)).astype(np.float32) for _ in range(count)]


def test_weights_and_numpy_reference(rng):
    xs = _sessions(rng)
    layer = BiasEncoding(S)
    layer([tf.constant(x) for x in xs])
    assert [w.name.split("/")[-1].split(":")[0] for w in layer.weights] == [
        "sess_bias_embedding", "seq_bias_embedding", "item_bias_embedding"]
    assert [tuple(w.shape) for w in layer.weights] == [(S, 1, 1), (1, T, 1), (1, 1, E)]
    for w in layer.get_weights():  # TruncatedNormal(0, 1e-4): cut at 2 sigma.
        assert np.abs(w).max() <= 2e-4 and np.abs(w).max() > 0
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    with tf.GradientTape() as tape:
        ts = [tf.constant(x) for x in xs]
        for t in ts:
            tape.watch(t)
        outs = layer(ts)
        loss = tf.add_n([tf.reduce_sum(o * (i + 1)) for i, o in enumerate(outs)])
    grads = tape.gradient(loss, ts + layer.trainable_weights)
    expected = ref.bias_encoding(xs, *weights)
    for out, exp in zip(outs, expected):
        np.testing.assert_allclose(out.numpy(), exp, rtol=1e-6, atol=1e-6)
    for i in range(S):
        np.testing.assert_array_equal(grads[i].numpy(), np.full((B, T, E), i + 1.0))
    np.testing.assert_allclose(tf.convert_to_tensor(grads[S]).numpy().reshape(-1),
                               [(i + 1.0) * B * T * E for i in range(S)])


@pytest.mark.skipif(IS_KERAS_3, reason="DeepCTR's BiasEncoding cannot run under Keras 3 (spec 11)")
def test_matches_deepctr(rng):
    from deepctr.layers.sequence import BiasEncoding as DeepCTRBias

    xs = [tf.constant(x) for x in _sessions(rng)]
    theirs, ours = DeepCTRBias(S), BiasEncoding(S)
    theirs(xs)
    ours(xs)
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    for o, t in zip(ours(xs), theirs(xs)):
        np.testing.assert_array_equal(o.numpy(), t.numpy())
    np.testing.assert_allclose(ours(xs)[1].numpy(),
                               ref.bias_encoding([x.numpy() for x in xs], *weights)[1],
                               rtol=1e-6, atol=1e-6)


def test_single_session_works(rng):
    (x,) = _sessions(rng, 1)
    layer = BiasEncoding(1)
    outs = layer([tf.constant(x)])
    assert isinstance(outs, list) and len(outs) == 1 and tuple(outs[0].shape) == (B, T, E)
    weights = layer.get_weights()
    np.testing.assert_allclose(outs[0].numpy(), ref.bias_encoding([x], *weights)[0], rtol=1e-6)
    single = layer(tf.constant(x))  # a bare tensor works too
    np.testing.assert_array_equal(single.numpy(), outs[0].numpy())
    inp = keras.Input((T, E))
    model = keras.Model(inp, BiasEncoding(1)([inp]))
    assert model.predict(x, verbose=0).shape == (B, T, E)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="sess_max_count"):
        BiasEncoding(0)
    with pytest.raises(ValueError, match="sess_max_count"):
        BiasEncoding(2)([tf.zeros((B, T, E))] * 3)
