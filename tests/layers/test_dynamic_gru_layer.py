"""DynamicGRU and BidirectionalDynamicGRU: parity with DeepCTR's DynamicGRU
(run inside tf.function with its removed TF aliases put back), the reverse
direction against the NumPy reference on reversed valid prefixes, and the
Keras behaviour DeepCTR lacks (eager, fit, save/load, batch size 1, tracked
weights), in both Keras modes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from deepctr_gru_oracle import deepctr_dynamic_gru
from deepctr_ops.compat import IS_KERAS_3, keras
from deepctr_ops.layers.sequence import BidirectionalDynamicGRU, DynamicGRU
from helpers import save_and_load, save_formats
from kernels import gru_reference as ref

B, T, E = 7, 5, 4
TYPES = ["GRU", "AIGRU", "AGRU", "AUGRU"]
ATT_TYPES = ("AGRU", "AUGRU")


def _data(rng, gru_type, units=3, batch=B):
    x, _, w, att = ref.random_case(rng, batch, T, E, units, gru_type, np.float32)
    lengths = np.array([0, 1, T, T + 4, 2, 3, 4][:batch] if batch > 1 else [3])
    lengths = lengths.reshape(-1, 1).astype(np.int32)
    inputs = [x, lengths] + ([att] if gru_type in ATT_TYPES else [])
    return inputs, [w["wg"], w["bg"], w["wc"], w["bc"]]


def _ours_with_grads(layer, inputs, upstream_seed=7):
    tensors = [tf.constant(v) for v in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors[0])
        if len(tensors) > 2:
            tape.watch(tensors[2])
        out = layer(tensors)
        upstream = tf.constant(np.random.default_rng(upstream_seed).standard_normal(
            out.shape.as_list()), tf.float32)
        loss = tf.reduce_sum(out * upstream)
    sources = [tensors[0]] + ([tensors[2]] if len(tensors) > 2 else [])
    grads = tape.gradient(loss, sources + layer.trainable_weights)
    return out.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("gru_type", TYPES)
@pytest.mark.parametrize("return_sequence", [True, False])
def test_parity_with_deepctr_outputs_and_gradients(rng, gru_type, return_sequence):
    if IS_KERAS_3 and gru_type in ("GRU", "AIGRU"):
        pytest.skip("DeepCTR's GRU/AIGRU cell (tf.compat.v1 GRUCell) does not exist under "
                    "Keras 3; this case runs in the tf_keras pass")
    inputs, weights = _data(rng, gru_type)
    want_out, want = deepctr_dynamic_gru(gru_type, return_sequence, *inputs[:2], weights,
                                         att=inputs[2] if len(inputs) > 2 else None)
    layer = DynamicGRU(num_units=3, gru_type=gru_type, return_sequence=return_sequence)
    layer.build([v.shape for v in inputs])
    layer.set_weights(weights)
    out, grads = _ours_with_grads(layer, inputs)
    tol = dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, want_out, **tol)
    names = ["x"] + (["att"] if gru_type in ATT_TYPES else []) + [
        "gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias"]
    for name, g in zip(names, grads):
        np.testing.assert_allclose(g, want[name].reshape(g.shape), **tol, err_msg=name)


def _reversed_prefixes(a, lengths):
    out = np.array(a, copy=True)
    for b, n in enumerate(ref.clamp_lengths(lengths, a.shape[1])):
        out[b, :n] = a[b, :n][::-1]
    return out


@pytest.mark.parametrize("gru_type", ["GRU", "AUGRU", "AGRU"])
def test_go_backwards_is_the_forward_gru_on_reversed_valid_prefixes(rng, gru_type):
    inputs, weights = _data(rng, gru_type, units=5)
    layer = DynamicGRU(num_units=5, gru_type=gru_type, go_backwards=True)
    out = layer(inputs)
    layer.set_weights(weights)
    out = layer(inputs).numpy()
    x, lengths = inputs[0], inputs[1]
    att = _reversed_prefixes(inputs[2], lengths) if len(inputs) > 2 else None
    want, _ = ref.forward(_reversed_prefixes(x, lengths), lengths, *weights, att=att,
                          cell=gru_type)
    np.testing.assert_allclose(out, _reversed_prefixes(want, lengths), rtol=1e-5, atol=1e-6)
    final = DynamicGRU(num_units=5, gru_type=gru_type, go_backwards=True, return_sequence=False)
    final(inputs)
    final.set_weights(weights)
    # The backward state after step 0 is the forward state after the reversed prefix.
    _, want_final = ref.forward(_reversed_prefixes(x, lengths), lengths, *weights, att=att,
                                cell=gru_type)
    np.testing.assert_allclose(final(inputs).numpy()[:, 0], want_final, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gru_type", TYPES)
def test_weights_are_tracked_with_deepctr_initialisers(gru_type):
    inputs, _ = _data(np.random.default_rng(0), gru_type)
    layer = DynamicGRU(gru_type=gru_type)
    layer(inputs)
    assert [tuple(w.shape) for w in layer.trainable_weights] == [
        (E + E, 2 * E), (2 * E,), (E + E, E), (E,)]
    assert [w.name.split("/")[-1].split(":")[0] for w in layer.weights] == (
        ["gates_kernel", "gates_bias", "candidate_kernel", "candidate_bias"] if IS_KERAS_3
        else ["kernel", "bias", "kernel", "bias"])
    np.testing.assert_array_equal(layer.weights[1].numpy(), 1.0)
    np.testing.assert_array_equal(layer.weights[3].numpy(), 0.0)
    assert layer.get_config()["num_units"] == E


def test_eager_tf_function_and_batch_size_one(rng):
    inputs, weights = _data(rng, "AUGRU", units=E, batch=1)
    layer = DynamicGRU(gru_type="AUGRU", return_sequence=False)
    eager = layer(inputs).numpy()
    traced = tf.function(lambda *a: layer(list(a)))(*inputs).numpy()
    assert eager.shape == (1, 1, E)
    np.testing.assert_array_equal(eager, traced)
    layer.set_weights(weights)
    _, want = ref.forward(inputs[0], inputs[1], *weights, att=inputs[2], cell="AUGRU")
    np.testing.assert_allclose(layer(inputs).numpy()[:, 0], want, rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="gru_type"):
        DynamicGRU(gru_type="LSTM")
    with pytest.raises(ValueError, match="gru_type"):
        BidirectionalDynamicGRU(gru_type="gru")
    with pytest.raises(ValueError, match="merge_mode"):
        BidirectionalDynamicGRU(merge_mode="max")
    x = np.ones((2, T, E), np.float32)
    lengths = np.ones((2, 1), np.int32)
    with pytest.raises(ValueError, match="att_score"):
        DynamicGRU(gru_type="AGRU")([x, lengths])
    with pytest.raises(ValueError, match="att_score"):
        DynamicGRU(gru_type="GRU")([x, lengths, np.ones((2, T, 1), np.float32)])


@pytest.mark.parametrize("return_sequence", [True, False])
def test_compute_output_shape_with_num_units_not_e(return_sequence):
    layer = DynamicGRU(num_units=6, return_sequence=return_sequence)
    shape = layer.compute_output_shape([(None, T, E), (None, 1)])
    want = (None, T, 6) if return_sequence else (None, 1, 6)
    assert tuple(shape) == want
    out = layer([np.ones((2, T, E), np.float32), np.ones((2, 1), np.int32)])
    assert tuple(out.shape)[1:] == want[1:]
    bi = BidirectionalDynamicGRU(num_units=6, return_sequence=return_sequence)
    assert tuple(bi.compute_output_shape([(None, T, E), (None, 1)])) == want[:2] + (12,)


@pytest.mark.parametrize("merge_mode", ["fw", "bw", "sum", "mul", "ave", "concat", None])
def test_bidirectional_merges_a_forward_and_a_backward_gru(rng, merge_mode):
    inputs, _ = _data(rng, "AUGRU")
    layer = BidirectionalDynamicGRU(num_units=3, gru_type="AUGRU", merge_mode=merge_mode)
    out = layer(inputs)
    assert len(layer.trainable_weights) == 8
    fw_w, bw_w = layer.get_weights()[:4], layer.get_weights()[4:]
    fw = DynamicGRU(3, "AUGRU")
    bw = DynamicGRU(3, "AUGRU", go_backwards=True)
    fw(inputs)
    bw(inputs)
    fw.set_weights(fw_w)
    bw.set_weights(bw_w)
    f, b = fw(inputs).numpy(), bw(inputs).numpy()
    want = {"fw": f, "bw": b, "sum": f + b, "mul": f * b, "ave": (f + b) / 2,
            "concat": np.concatenate([f, b], -1), None: [f, b]}[merge_mode]
    if merge_mode is None:
        for o, w in zip(out, want):
            np.testing.assert_allclose(o.numpy(), w, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-6, atol=1e-7)


def _dien_model():
    x = keras.Input((T, E))
    lengths = keras.Input((1,), dtype="int32")
    interests = DynamicGRU(gru_type="GRU", name="extractor")([x, lengths])
    scores = keras.layers.Dense(1, activation="sigmoid", name="attention")(interests)
    final = DynamicGRU(gru_type="AUGRU", return_sequence=False, name="evolution")(
        [interests, lengths, scores])
    bi = BidirectionalDynamicGRU(num_units=2, return_sequence=False, name="bi")([x, lengths])
    merged = keras.layers.Concatenate()([keras.layers.Flatten()(final),
                                         keras.layers.Flatten()(bi)])
    out = keras.layers.Dense(1, activation="sigmoid", name="head")(merged)
    return keras.Model([x, lengths], out)


def _dien_data(rng, n=64):
    x = rng.standard_normal((n, T, E)).astype(np.float32)
    lengths = rng.integers(0, T + 1, size=(n, 1)).astype(np.int32)
    y = (x[:, 0, 0] > 0).astype(np.float32).reshape(-1, 1)
    return [x, lengths], y


def test_dien_style_model_trains_with_fit_and_every_weight_changes(rng):
    tf.keras.utils.set_random_seed(1)
    model = _dien_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    inputs, y = _dien_data(rng)
    before = [w.copy() for w in model.get_weights()]
    first = model.evaluate(inputs, y, verbose=0)
    model.fit(inputs, y, epochs=8, batch_size=16, verbose=0)
    assert model.evaluate(inputs, y, verbose=0) < first
    names = [w.name for w in model.weights]
    assert len(model.trainable_weights) == 2 * 4 + 2 + 2 * 4 + 2
    for name, a, b in zip(names, before, model.get_weights()):
        assert not np.array_equal(a, b), f"{name} did not change"


@pytest.mark.parametrize("fmt", save_formats())
def test_save_and_load(rng, tmp_path, fmt):
    model = _dien_model()
    inputs, _ = _dien_data(rng, 8)
    want = model.predict(inputs, verbose=0)
    loaded = save_and_load(model, fmt, str(tmp_path))
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), want, rtol=1e-6, atol=1e-7)
    config = DynamicGRU(gru_type="AGRU", return_sequence=False).get_config()
    clone = DynamicGRU.from_config(config)
    assert clone.gru_type == "AGRU" and clone.return_sequence is False
