"""A SavedModel that uses the ops runs and fine-tunes in a fresh process after
`import deepctr_ops` (the gradients are registered at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool


class _Pooler(tf.Module):
    def __init__(self):
        super().__init__()
        self.table = tf.Variable(np.random.default_rng(0).standard_normal((20, 4)),
                                 dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.int32),
                                  tf.TensorSpec([None, 1], tf.int32)])
    def score(self, ids, lengths):
        embedded = tf.gather(self.table, ids)
        mean = sequence_pool(embedded, lengths, "mean")
        peak = masked_sequence_pool(embedded, ids > 0, "max")
        return tf.reduce_sum(mean * peak, axis=[1, 2])


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=180)


def test_reloaded_saved_model_runs_and_differentiates(tmp_path):
    module = _Pooler()
    ids = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9], [0, 0, 0, 0, 0, 0]], np.int32)
    lengths = np.array([[3], [6], [0]], np.int32)
    with tf.GradientTape() as tape:
        out = module.score(ids, lengths)
    grad = tf.convert_to_tensor(tape.gradient(out, module.table))
    path = str(tmp_path / "pooler")
    tf.saved_model.save(module, path)
    np.savez(str(tmp_path / "expected.npz"), ids=ids, lengths=lengths, out=out.numpy(),
             grad=grad.numpy())

    result = _run(f"""
        import numpy as np, tensorflow as tf
        import deepctr_ops
        data = np.load({str(tmp_path / "expected.npz")!r})
        loaded = tf.saved_model.load({path!r})
        with tf.GradientTape() as tape:
            out = loaded.score(data["ids"], data["lengths"])
        grad = tf.convert_to_tensor(tape.gradient(out, loaded.table))
        np.testing.assert_allclose(out.numpy(), data["out"], rtol=1e-6)
        np.testing.assert_allclose(grad.numpy(), data["grad"], rtol=1e-6)
        print("fine-tunable")
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fine-tunable" in result.stdout

    without_library = _run(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
    """)
    assert without_library.returncode != 0
    assert "DeepCTR>" in without_library.stderr and "not registered" in without_library.stderr


def test_load_saved_model_names_ops_this_version_lacks(tmp_path):
    # A model exported by a newer deepctr-ops: one op renamed to one this
    # version does not have. load_saved_model names it instead of TF's failure
    # at the first call.
    from deepctr_ops import load_saved_model
    from deepctr_ops.saved_model import saved_model_ops
    from tensorflow.core.protobuf import saved_model_pb2

    path = str(tmp_path / "pooler")
    tf.saved_model.save(_Pooler(), path)
    assert {"DeepCTR>SequencePool", "DeepCTR>MaskedSequencePool"} <= saved_model_ops(path)
    loaded = load_saved_model(path)
    ids = np.array([[1, 2, 0, 0, 0, 0]], np.int32)
    assert loaded.score(ids, np.array([[2]], np.int32)).shape == (1,)

    proto = saved_model_pb2.SavedModel()
    pb = os.path.join(path, "saved_model.pb")
    with open(pb, "rb") as f:
        proto.ParseFromString(f.read())
    for function in proto.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op == "DeepCTR>MaskedSequencePool":
                node.op = "DeepCTR>FuturePool"
    with open(pb, "wb") as f:
        f.write(proto.SerializeToString())
    with pytest.raises(ValueError, match=r"uses DeepCTR>FuturePool, which deepctr-ops .* does "
                                         r"not provide"):
        load_saved_model(path)


def test_ragged_pooling_saved_model_reloads(tmp_path):
    class Ragged(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3]), tf.TensorSpec([None], tf.int64)])
        def pool(self, values, splits):
            return ragged_sequence_pool(values, splits, "max")

    path = str(tmp_path / "ragged")
    tf.saved_model.save(Ragged(), path)
    values = np.arange(15, dtype=np.float32).reshape(5, 3)
    splits = np.array([0, 2, 2, 5], np.int64)
    result = _run(f"""
        import json
        import numpy as np, tensorflow as tf
        import deepctr_ops
        loaded = deepctr_ops.load_saved_model({path!r})
        values = tf.constant(np.arange(15, dtype=np.float32).reshape(5, 3))
        with tf.GradientTape() as tape:
            tape.watch(values)
            out = loaded.pool(values, tf.constant([0, 2, 2, 5], tf.int64))
            loss = tf.reduce_sum(out)
        grad = tape.gradient(loss, values)
        print(json.dumps([out.numpy().ravel().tolist(), grad.numpy().ravel().tolist()]))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    expected_grad = np.zeros_like(values)
    expected_grad[[1, 4]] = 1  # Each row's last step holds its max; the empty row has none.
    out, grad = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(out, ragged_sequence_pool(values, splits, "max").numpy().ravel())
    np.testing.assert_array_equal(grad, expected_grad.ravel())
