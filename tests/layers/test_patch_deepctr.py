"""deepctr_ops.patch_deepctr(): DeepCTR's own DIN, DIEN (every gru_type), BST and
DSIN build, train one epoch and predict on deepctr-ops' layers, from feature
definitions like DeepCTR's examples (examples/run_din.py, run_dien.py,
run_dsin.py) on synthetic data; DIN's and DIEN's predictions equal the
unpatched models' for the same weights (DIEN inside tf.function, with the TF
aliases DeepCTR's DynamicGRU needs put back)."""

from __future__ import annotations

import re

import deepctr_ops
import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.compat import IS_KERAS_3

pytestmark = pytest.mark.skipif(
    IS_KERAS_3, reason="DeepCTR 0.9.4's model builders need tf_keras (spec 11); CI runs "
                       "tests/layers under tf_keras too")

B, T = 32, 4


def _din_features(use_neg: bool = False, with_length: bool = False):
    """DeepCTR's examples/run_din.py (and run_dien.py) feature definitions."""
    from deepctr.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat

    length = "seq_length" if with_length else None
    columns = [SparseFeat("user", 3, embedding_dim=10), SparseFeat("gender", 2, embedding_dim=4),
               SparseFeat("item_id", 3 + 1, embedding_dim=8),
               SparseFeat("cate_id", 2 + 1, embedding_dim=4), DenseFeat("pay_score", 1)]
    columns += [
        VarLenSparseFeat(SparseFeat("hist_item_id", 3 + 1, embedding_dim=8,
                                    embedding_name="item_id"), maxlen=T, length_name=length),
        VarLenSparseFeat(SparseFeat("hist_cate_id", 2 + 1, embedding_dim=4,
                                    embedding_name="cate_id"), maxlen=T, length_name=length)]
    if use_neg:
        columns += [
            VarLenSparseFeat(SparseFeat("neg_hist_item_id", 3 + 1, embedding_dim=8,
                                        embedding_name="item_id"), maxlen=T, length_name=length),
            VarLenSparseFeat(SparseFeat("neg_hist_cate_id", 2 + 1, embedding_dim=4,
                                        embedding_name="cate_id"), maxlen=T, length_name=length)]
    return columns


def _din_data(rng, use_neg: bool = False):
    lengths = rng.integers(1, T + 1, size=B)
    valid = np.arange(T)[None, :] < lengths[:, None]
    x = {"user": rng.integers(0, 3, B), "gender": rng.integers(0, 2, B),
         "item_id": rng.integers(1, 4, B), "cate_id": rng.integers(1, 3, B),
         "pay_score": rng.random(B).astype(np.float32),
         "hist_item_id": np.where(valid, rng.integers(1, 4, (B, T)), 0),
         "hist_cate_id": np.where(valid, rng.integers(1, 3, (B, T)), 0),
         "seq_length": lengths}
    if use_neg:
        x["neg_hist_item_id"] = np.where(valid, rng.integers(1, 4, (B, T)), 0)
        x["neg_hist_cate_id"] = np.where(valid, rng.integers(1, 3, (B, T)), 0)
    return x, rng.integers(0, 2, B).astype(np.float32)


def _fit_and_predict(model, x, y):
    model.compile("adam", "binary_crossentropy")
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    predictions = model.predict(x, verbose=0)
    assert predictions.shape == (B, 1) and np.isfinite(predictions).all()
    return predictions


def _our_layer_types(model) -> set[str]:
    found = set()

    def visit(layer):
        if type(layer).__module__.startswith("deepctr_ops"):
            found.add(type(layer).__name__)
        for sub in getattr(layer, "_self_tracked_trackables", []) or []:
            if isinstance(sub, tf.keras.layers.Layer):
                visit(sub)
    for layer in model.layers:
        visit(layer)
    return found


def test_patch_swaps_and_restores():
    import deepctr.layers.sequence as sequence
    import deepctr.models.sequence.din as din

    original = din.AttentionSequencePoolingLayer
    with deepctr_ops.patch_deepctr():
        assert din.AttentionSequencePoolingLayer.__module__.startswith("deepctr_ops")
        assert sequence.DynamicGRU.__module__.startswith("deepctr_ops")
        import deepctr.layers as layers

        assert layers.custom_objects["DynamicGRU"].__module__.startswith("deepctr_ops")
    assert din.AttentionSequencePoolingLayer is original
    assert not deepctr_ops.patch.is_patched()


def test_din_patched_trains_and_matches_unpatched(rng):
    from deepctr.models import DIN

    x, y = _din_data(rng)
    columns = _din_features()
    with deepctr_ops.patch_deepctr():
        ours = DIN(columns, ["item_id", "cate_id"])
        assert "AttentionSequencePoolingLayer" in _our_layer_types(ours)
        _fit_and_predict(ours, x, y)
    theirs = DIN(columns, ["item_id", "cate_id"])
    assert not _our_layer_types(theirs)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def _weight_key(name: str) -> str:
    """A variable name without what differs between the two builds: Keras'
    per-process layer numbering (`dnn_2`, `dice_1`) and the TF1 GRUCell's scope.
    Weights whose keys coincide are matched in creation order."""
    parts = name.split(":")[0].replace("gru_cell/", "").split("/")
    return "/".join(re.sub(r"_\d+$", "", part) for part in parts)


@pytest.mark.parametrize("gru_type", ["GRU", "AIGRU", "AGRU", "AUGRU"])
def test_dien_patched_trains_and_matches_unpatched(rng, gru_type):
    from deepctr.models import DIEN
    from deepctr_gru_oracle import restore_removed_tf_aliases

    use_neg = gru_type == "AUGRU"  # The auxiliary loss path too.
    x, y = _din_data(rng, use_neg)
    columns = _din_features(use_neg, with_length=True)
    with deepctr_ops.patch_deepctr():
        ours = DIEN(columns, ["item_id", "cate_id"], gru_type=gru_type, use_negsampling=use_neg)
        assert "DynamicGRU" in _our_layer_types(ours)
        _fit_and_predict(ours, x, y)
        expected = ours.predict(x, verbose=0)
        values = [(w.name, tuple(w.shape), w.numpy()) for w in ours.weights]

    # DeepCTR's own DIEN runs only in a graph (its AGRU/AUGRU variables come from
    # tf.compat.v1.get_variable), with the TF aliases it needs put back.
    restore_removed_tf_aliases()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.keras.backend.set_session(session)
        theirs = DIEN(columns, ["item_id", "cate_id"], gru_type=gru_type,
                      use_negsampling=use_neg)
        variables = tf.compat.v1.global_variables()
        session.run(tf.compat.v1.variables_initializer(variables))
        unused = list(variables)
        for name, shape, value in values:
            match = next((v for v in unused
                          if _weight_key(v.name) == _weight_key(name) and tuple(v.shape) == shape),
                         None)
            assert match is not None, (name, shape, [(v.name, tuple(v.shape)) for v in unused])
            unused.remove(match)
            match.load(value, session)
        feed = {inp: np.reshape(x[name], [-1, *inp.shape[1:]])
                for inp, name in zip(theirs.inputs, theirs.input_names)}
        got = session.run(theirs.outputs[0], feed_dict=feed)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_bst_and_dsin_patched_train(rng):
    from deepctr.feature_column import SparseFeat, VarLenSparseFeat
    from deepctr.models import BST, DSIN

    x, y = _din_data(rng)
    with deepctr_ops.patch_deepctr():
        bst = BST(_din_features(with_length=True), ["item_id", "cate_id"], att_head_num=2)
        assert "Transformer" in _our_layer_types(bst)
        _fit_and_predict(bst, x, y)

        sess_columns = [SparseFeat("user", 3, embedding_dim=8),
                        SparseFeat("item", 3 + 1, embedding_dim=4),
                        SparseFeat("cate_id", 2 + 1, embedding_dim=4)]
        sess_columns += [
            VarLenSparseFeat(SparseFeat(f"sess_{s}_item", 3 + 1, embedding_dim=4,
                                        embedding_name="item"), maxlen=T)
            for s in range(2)]
        sess_columns += [
            VarLenSparseFeat(SparseFeat(f"sess_{s}_cate_id", 2 + 1, embedding_dim=4,
                                        embedding_name="cate_id"), maxlen=T)
            for s in range(2)]
        sess_x = {"user": x["user"], "item": x["item_id"], "cate_id": x["cate_id"],
                  "sess_length": rng.integers(1, 3, B)}
        for s in range(2):
            sess_x[f"sess_{s}_item"] = x["hist_item_id"]
            sess_x[f"sess_{s}_cate_id"] = x["hist_cate_id"]
        dsin = DSIN(sess_columns, ["item", "cate_id"], sess_max_count=2, bias_encoding=True,
                    att_embedding_size=1, att_head_num=8)
        assert {"Transformer", "BiLSTM", "BiasEncoding"} <= _our_layer_types(dsin)
        _fit_and_predict(dsin, sess_x, y)
