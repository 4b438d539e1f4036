"""Training with tf.distribute, in this run's Keras flavour: a DIN-style model
on deepctr-ops layers (tests/distributed/din_training.py) trained a few steps

* by two worker processes under MultiWorkerMirroredStrategy, with TF_CONFIG
  on free loopback ports: both end with the same weights, equal to one process
  training on the same global batches, and the loss falls;
* under MirroredStrategy with two logical CPU devices: the same.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "distributed" / "din_training.py"
STEPS = 12


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(kind: str, out: Path, env_extra: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen([sys.executable, str(SCRIPT), kind, str(out), str(STEPS)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"training did not finish in {timeout} s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("single") / "single.npz"
    _finish(_start("single", out))
    return dict(np.load(out))


def _assert_trained_like(result: dict, reference: dict) -> None:
    losses = result["losses"]
    assert len(losses) == STEPS
    assert losses[-3:].mean() < losses[:3].mean() - 0.05, losses
    for key in reference:
        if key.startswith("w"):
            np.testing.assert_allclose(result[key], reference[key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)


def test_multi_worker_mirrored_two_processes(tmp_path, single):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    outs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    workers = [
        _start("multiworker", outs[i], {"TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    try:
        for worker in workers:
            _finish(worker)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    first, second = (dict(np.load(out)) for out in outs)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    _assert_trained_like(first, single)


def test_mirrored_two_logical_cpus(tmp_path, single):
    out = tmp_path / "mirrored.npz"
    _finish(_start("mirrored2", out))
    _assert_trained_like(dict(np.load(out)), single)
