#!/usr/bin/env python3
"""Builds one deepctr-ops wheel per TensorFlow minor version and smoke-tests each.

    python tools/build_wheels.py --tf 2.20 2.21 [--out dist] [--cuda AUTO|ON|OFF]

For every X.Y: a virtualenv with tensorflow==X.Y.* and the build tools builds
the wheel with `pip wheel --no-build-isolation` (so it compiles against that
TensorFlow), versioned `<version>+tfX.Y` and pinned to tensorflow>=X.Y,<X.Y+1
(tools/metadata). Then a second, clean virtualenv installs only that wheel
(which brings its TensorFlow), runs `deepctr-ops info` and one forward and
backward pass of every op, and the summary lists each wheel, its size and
whether its smoke test passed. Exit status 1 if any build or smoke test failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_TOOLS = ["scikit-build-core>=1.1,<2", "pybind11>=2.12", "cmake>=3.24", "ninja"]

SMOKE = r"""
import numpy as np, tensorflow as tf
import deepctr_ops
from deepctr_ops.ops import masked_sequence_pool, ragged_sequence_pool, sequence_pool
from deepctr_ops.ops.attention import attention_softmax
from deepctr_ops.ops import attention_pool, dynamic_gru, embedding_sequence_pool
rng = np.random.default_rng(0)
x = tf.constant(rng.standard_normal((3, 4, 5)), tf.float32)
lengths = tf.constant([[0], [2], [4]])
mask = tf.sequence_mask([1, 3, 4], 4)
calls = {}
for mode in ("sum", "mean", "max"):
    calls["sequence_pool " + mode] = lambda v, m=mode: sequence_pool(v, lengths, m)
    calls["masked_sequence_pool " + mode] = lambda v, m=mode: masked_sequence_pool(v, mask, m)
    calls["ragged_sequence_pool " + mode] = lambda v, m=mode: ragged_sequence_pool(
        tf.RaggedTensor.from_tensor(v, lengths=[0, 2, 4]), mode=m)
calls["attention_softmax"] = lambda v: attention_softmax(
    tf.einsum("bte,bse->bts", v, v), tf.sequence_mask([1, 2, 4], 4), 2.0, True, heads=1)
w = [tf.constant(rng.standard_normal(s) * 0.3, tf.float32) for s in ((20, 6), (6, 1))]
b = [tf.zeros([6]), tf.zeros([1])]
calls["attention_pool"] = lambda v: attention_pool(
    v[:, :1], v, w, b, lengths=lengths, weight_normalization=True)
gru_w = [tf.constant(rng.standard_normal(s) * 0.3, tf.float32)
         for s in ((10, 10), (10,), (10, 5), (5,))]
calls["dynamic_gru AUGRU"] = lambda v: dynamic_gru(
    v, lengths, *gru_w, att_scores=tf.ones([3, 4, 1]) * 0.5, cell="AUGRU")[0]
calls["dynamic_gru reverse"] = lambda v: dynamic_gru(v, lengths, *gru_w, reverse=True)[1]
ids = tf.constant([[1, 2, 0, 0], [3, 4, 5, 0], [6, 7, 8, 9]])
for mode in ("mean", "max"):
    calls["embedding_sequence_pool " + mode] = lambda v, m=mode: embedding_sequence_pool(
        tf.reshape(v, [12, 5]), ids, mode=m, mask_zero=True)
for name, fn in calls.items():
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(fn(x) ** 2)
    grad = tape.gradient(loss, x)
    assert grad is not None and np.isfinite(grad.numpy()).all(), name
    ops = {op.type for op in tf.function(fn).get_concrete_function(x).graph.get_operations()}
    assert any(t.startswith("DeepCTR>") for t in ops), (name, ops)
print(f"smoke: {len(calls)} ops forward+backward on TensorFlow {tf.__version__}, ok")
"""


def run(cmd: list[str], log, env: dict | None = None, cwd: Path | None = None) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def venv(path: Path, log) -> Path:
    run([sys.executable, "-m", "venv", "--clear", str(path)], log)
    python = path / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], log)
    return python


def build_one(tf_minor: str, out: Path, work: Path, cuda: str, log) -> Path:
    python = venv(work / f"build-tf{tf_minor}", log)
    run([str(python), "-m", "pip", "install", "-q", f"tensorflow=={tf_minor}.*", *BUILD_TOOLS],
        log)
    env = dict(os.environ, DEEPCTR_OPS_TF_LOCAL_VERSION="1", DEEPCTR_OPS_WITH_CUDA=cuda,
               SKBUILD_BUILD_DIR=str(work / f"cmake-tf{tf_minor}"))
    before = set(out.glob("*.whl"))
    run([str(python), "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(out),
         str(ROOT)], log, env=env)
    built = sorted(set(out.glob(f"*+tf{tf_minor}-*.whl")) - before) or sorted(
        out.glob(f"*+tf{tf_minor}-*.whl"))
    if not built:
        raise RuntimeError(f"no wheel for TF {tf_minor} in {out}")
    return built[-1]


def smoke_one(wheel: Path, tf_minor: str, work: Path, log) -> str:
    python = venv(work / f"smoke-tf{tf_minor}", log)
    run([str(python), "-m", "pip", "install", "-q", str(wheel)], log)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    info = subprocess.run([str(python.parent / "deepctr-ops"), "info"], capture_output=True,
                          text=True, env=env, check=True, cwd=work)
    log.write(info.stdout)
    if f"TensorFlow running:   {tf_minor}." not in info.stdout:
        raise RuntimeError(f"the wheel did not install TensorFlow {tf_minor}:\n{info.stdout}")
    smoke = subprocess.run([str(python), "-c", SMOKE], capture_output=True, text=True, env=env,
                           check=True, cwd=work)
    log.write(smoke.stdout)
    return smoke.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tf", nargs="+", required=True, metavar="X.Y",
                        help="TensorFlow minor versions, e.g. 2.20 2.21")
    parser.add_argument("--out", default=str(ROOT / "dist"), help="where the wheels go")
    parser.add_argument("--work", default=str(ROOT / "build" / "wheels"),
                        help="virtualenvs, build trees and logs")
    parser.add_argument("--cuda", default="AUTO", choices=("AUTO", "ON", "OFF"),
                        help="DEEPCTR_OPS_WITH_CUDA for the builds")
    args = parser.parse_args()
    out, work = Path(args.out).resolve(), Path(args.work).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    failed = False
    summary = []
    for tf_minor in args.tf:
        log_path = work / f"tf{tf_minor}.log"
        start = time.time()
        with open(log_path, "w") as log:
            try:
                wheel = build_one(tf_minor, out, work, args.cuda, log)
                result = smoke_one(wheel, tf_minor, work, log)
                size = wheel.stat().st_size / 2**20
                summary.append(f"TF {tf_minor}: {wheel.name} ({size:.1f} MiB): {result}")
            except (subprocess.CalledProcessError, RuntimeError) as err:
                failed = True
                detail = getattr(err, "stderr", None) or ""
                summary.append(f"TF {tf_minor}: FAILED ({err}) {detail[-500:]} see {log_path}")
        summary[-1] += f" [{time.time() - start:.0f} s]"
        print(summary[-1], flush=True)
    print("\n".join(["", "wheels:"] + summary))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
