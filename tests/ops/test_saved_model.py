"""A SavedModel that uses the ops runs and fine-tunes in a fresh process after
`import deepctr_ops` (the gradients are registered at import)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
from deepctr_ops.ops import masked_sequence_pool, sequence_pool


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
