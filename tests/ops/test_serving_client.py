"""The C++ serving client (tools/serving_client), the in-repo stand-in for
tensorflow_model_server: built against the installed TensorFlow's
libtensorflow_cc.so.2 / libtensorflow_framework.so.2, it loads the op library
and a SavedModel (tag serve), runs its serving signature on inputs from a file,
and its outputs equal Python's (every op: pooling in three layouts, attention
softmax, DIN attention pooling, the dynamic GRU, the fused embedding pooling
reading a variable table in place). Skipped, with the reason printed, only when the
client cannot be built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops import _loader
from deepctr_ops.ops import (
    attention_pool,
    dynamic_gru,
    embedding_sequence_pool,
    masked_sequence_pool,
    ragged_sequence_pool,
    sequence_pool,
)
from deepctr_ops.ops.attention import attention_softmax

ROOT = Path(__file__).resolve().parents[2]
T, E = 6, 4


class _Served(tf.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.table = tf.Variable(rng.standard_normal((20, E)), dtype=tf.float32)
        self.query = tf.Variable(rng.standard_normal((E, E)), dtype=tf.float32)
        self.att_kernels = [tf.Variable(rng.standard_normal(s) * 0.3, dtype=tf.float32)
                            for s in ((4 * E, 6), (6, 1))]
        self.att_biases = [tf.Variable(tf.zeros([6])), tf.Variable(tf.zeros([1]))]
        self.gru = [tf.Variable(rng.standard_normal(s) * 0.3, dtype=tf.float32)
                    for s in ((2 * E, 2 * E), (2 * E,), (2 * E, E), (E,))]

    @tf.function(input_signature=[tf.TensorSpec([None, T], tf.int32, name="ids"),
                                  tf.TensorSpec([None, 1], tf.int64, name="lengths")])
    def serve(self, ids, lengths):
        embedded = tf.gather(self.table, ids)
        mean = sequence_pool(embedded, lengths, "mean")
        peak = masked_sequence_pool(embedded, ids > 0, "max")
        ragged = tf.RaggedTensor.from_tensor(embedded, lengths=tf.reshape(lengths, [-1]))
        total = ragged_sequence_pool(ragged, mode="sum")
        scores = tf.einsum("bte,ef,bsf->bts", embedded, self.query, embedded)
        key_valid = tf.sequence_mask(tf.reshape(lengths, [-1]), T)
        attended = tf.matmul(attention_softmax(scores, key_valid, 2.0, True, heads=1), embedded)
        din = attention_pool(embedded[:, :1], embedded, self.att_kernels, self.att_biases,
                             lengths=lengths, weight_normalization=True)
        _, final = dynamic_gru(embedded, lengths, *self.gru, cell="GRU")
        fused = tf.concat([embedding_sequence_pool(self.table, ids, lengths=lengths, mode="mean"),
                           embedding_sequence_pool(self.table, ids, mode="max", mask_zero=True)],
                          axis=2)
        return {"pooled": tf.concat([mean, peak, total, din, fused], axis=2),
                "attended": tf.reduce_mean(attended, axis=1),
                "gru_final": final}


def _build_client(tmp_path) -> Path:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not on the PATH: the serving client cannot be built")
    build = tmp_path / "build"
    configure = subprocess.run(
        ["cmake", "-S", str(ROOT / "tools" / "serving_client"), "-B", str(build),
         f"-DPython_EXECUTABLE={sys.executable}"], capture_output=True, text=True)
    if configure.returncode != 0:
        print(configure.stdout[-2000:], configure.stderr[-2000:])
        pytest.skip("the serving client cannot be configured: " + configure.stderr[-300:])
    compiled = subprocess.run(["cmake", "--build", str(build), "--parallel", "2"],
                              capture_output=True, text=True)
    if compiled.returncode != 0:
        print(compiled.stdout[-3000:], compiled.stderr[-3000:])
        pytest.skip("the serving client cannot be built: " + compiled.stdout[-300:])
    return build / "serving_client"


def _input_line(key: str, array: np.ndarray) -> str:
    dtype = {np.int32: "int32", np.int64: "int64", np.float32: "float"}[array.dtype.type]
    return " ".join([key, dtype, str(array.ndim), *map(str, array.shape),
                     *map(str, array.ravel().tolist())])


def test_cpp_client_outputs_equal_python(tmp_path):
    client = _build_client(tmp_path)
    module = _Served()
    path = str(tmp_path / "served")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    ids = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9], [0, 0, 0, 0, 0, 0],
                    [3, 3, 0, 0, 0, 0]], np.int32)
    lengths = np.array([[3], [6], [0], [2]], np.int64)
    expected = {k: v.numpy() for k, v in module.serve(ids, lengths).items()}
    inputs = tmp_path / "inputs.txt"
    inputs.write_text(_input_line("ids", ids) + "\n" + _input_line("lengths", lengths) + "\n")

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([str(client), _loader.library_path(), path, str(inputs)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    got = {}
    for line in result.stdout.strip().splitlines():
        key, rank, *rest = line.split()
        shape = tuple(int(d) for d in rest[: int(rank)])
        got[key] = np.array([float(v) for v in rest[int(rank):]]).reshape(shape)
    assert set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-7, err_msg=key)

    without_ops = subprocess.run([str(client), "/nonexistent/_deepctr_ops.so", path, str(inputs)],
                                 capture_output=True, text=True, env=env, timeout=120)
    assert without_ops.returncode != 0
    assert "cannot load the op library" in without_ops.stderr
