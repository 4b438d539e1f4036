"""`deepctr-ops info` and the benchmark runner (on a tiny case: no timing claims)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from deepctr_ops.bench import Case, format_table, run_cases
from deepctr_ops.cli import registered_ops


def test_registered_ops_have_cpu_kernels():
    ops = registered_ops()
    for name in ["DeepCTR>SequencePool", "DeepCTR>SequencePoolGrad", "DeepCTR>MaskedSequencePool",
                 "DeepCTR>MaskedSequencePoolGrad", "DeepCTR>RaggedSequencePool",
                 "DeepCTR>RaggedSequencePoolGrad"]:
        assert "CPU" in ops[name], name
    from deepctr_ops import _build_info

    if _build_info.CUDA_BUILT:
        assert all("GPU" in devices for devices in ops.values())


def test_info_command_prints_versions_and_ops():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", "deepctr_ops", "info"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    import tensorflow as tf

    assert f"TensorFlow running:   {tf.__version__}" in out.stdout
    assert "DeepCTR>SequencePoolGrad" in out.stdout and "CUDA kernels built:" in out.stdout
    from deepctr_ops import _build_info

    if _build_info.CUDA_BUILT:
        # The CUDA version and architectures the kernels were built for ...
        assert (f"CUDA kernels built:   yes, CUDA {_build_info.CUDA_VERSION} for "
                f"{_build_info.CUDA_ARCHITECTURES.replace(';', ' ')}") in out.stdout
        assert _build_info.CUDA_VERSION.split(".")[0].isdigit()
    tf_cuda = tf.sysconfig.get_build_info().get("cuda_version")
    # ... next to TensorFlow's and the driver's (none on a machine without a GPU).
    assert f"TensorFlow's CUDA:    {tf_cuda if tf_cuda else 'none'}" in out.stdout
    assert "NVIDIA driver:" in out.stdout


def test_default_cuda_architectures_follow_tensorflow():
    # Empty DEEPCTR_OPS_CUDA_ARCHITECTURES: TF's list as far as nvcc supports it,
    # plus PTX for the newest (nvcc 13 has no sm_60/sm_70: 80-real 89-real 90-virtual).
    from deepctr_ops import _build_info

    if not _build_info.CUDA_BUILT:
        pytest.skip("built without CUDA")
    import tensorflow as tf

    built = _build_info.CUDA_ARCHITECTURES.split(";")
    tf_archs = tf.sysconfig.get_build_info().get("cuda_compute_capabilities", [])
    wanted = {a.replace("sm_", "") + "-real" if a.startswith("sm_")
              else a.replace("compute_", "") + "-virtual" for a in tf_archs}
    assert set(built) <= wanted | {max(built, key=lambda a: int(a.split("-")[0]))}
    newest = max(int(a.split("-")[0]) for a in built)
    assert f"{newest}-virtual" in built


def test_runner_reports_all_implementations_and_ratios(tmp_path):
    from deepctr.layers.sequence import SequencePoolingLayer as DeepCTRPooling
    from deepctr_ops.layers.sequence import SequencePoolingLayer

    case = Case(
        name="tiny sum",
        make_inputs=lambda rng: [rng.standard_normal((4, 3, 2)).astype(np.float32),
                                 np.array([[1], [0], [3], [2]], np.int32)],
        layers={"deepctr_ops": lambda: SequencePoolingLayer("sum"),
                "deepctr": lambda: DeepCTRPooling("sum"),
                "twin": lambda: SequencePoolingLayer("sum")},
    )
    results = run_cases([case], repeats=2, min_seconds=0.0, log=lambda _: None)
    (result,) = results
    assert set(result.forward_ms) == {"deepctr_ops", "deepctr", "twin"}
    assert set(result.backward_ms) == {"deepctr_ops", "deepctr", "twin"}
    assert result.ratio("backward") == result.backward_ms["deepctr"] / result.backward_ms[
        "deepctr_ops"]
    table = format_table(results)
    assert "| tiny sum | fwd+bwd |" in table
    json.dumps(result.as_dict())


def test_runner_interleaves_rounds_and_keeps_their_medians():
    from deepctr_ops.layers.sequence import SequencePoolingLayer

    case = Case(
        name="tiny mean",
        make_inputs=lambda rng: [rng.standard_normal((2, 3, 2)).astype(np.float32),
                                 np.array([[1], [3]], np.int32)],
        layers={"deepctr_ops": lambda: SequencePoolingLayer("mean"),
                "twin": lambda: SequencePoolingLayer("mean")},
    )
    (result,) = run_cases([case], repeats=6, min_seconds=0.0, rounds=3, log=lambda _: None)
    for rounds_ms, overall in ((result.forward_rounds_ms, result.forward_ms),
                               (result.backward_rounds_ms, result.backward_ms)):
        assert set(rounds_ms) == {"deepctr_ops", "twin"}
        for impl, medians in rounds_ms.items():
            assert len(medians) == 3
            assert min(medians) <= overall[impl] <= max(medians)


def test_runner_reports_a_case_whose_implementations_all_fail():
    def broken():
        raise RuntimeError("cannot build")

    case = Case(name="broken", make_inputs=lambda rng: [np.zeros((2, 3, 2), np.float32)],
                layers={"deepctr_ops": broken, "deepctr": broken})
    messages = []
    (result,) = run_cases([case], repeats=2, min_seconds=0.0, log=messages.append)
    assert result.forward_ms == {} and result.backward_ms == {}
    assert result.ratio("backward") is None
    assert sum("failed: RuntimeError: cannot build" in m for m in messages) == 2
    assert "| broken | fwd+bwd | n/a | n/a | n/a | n/a | n/a |" in format_table([result])


def test_plot_draws_every_row_and_baseline(tmp_path):
    from deepctr_ops.bench import Result
    from deepctr_ops.bench.plot import _rows, plot_results

    results = [
        Result("pool B4", forward_ms={"deepctr_ops": 1.0, "deepctr": 8.0, "twin": 4.0},
               backward_ms={"deepctr_ops": 2.0, "deepctr": 10.0, "twin": 5.0}),
        Result("gru B2", forward_ms={"deepctr_ops": 2.0, "deepctr": 3.0},
               backward_ms={"deepctr_ops": 4.0, "deepctr": 2.0}),
    ]
    labels, ratios = _rows(results)
    assert labels == ["pool B4 fwd", "pool B4 fwd+bwd", "gru B2 fwd", "gru B2 fwd+bwd"]
    assert list(ratios) == ["deepctr", "twin"]
    assert ratios["deepctr"] == [8.0, 5.0, 1.5, 0.5]
    assert ratios["twin"] == [4.0, 2.5, None, None]
    path = tmp_path / "speed.png"
    plot_results(results, str(path), title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "deepctr_ops", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_output_is_its_own_unless_verbose():
    quiet = _cli("info")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stderr == "", quiet.stderr[:2000]
    assert quiet.stdout.startswith("deepctr-ops ")
    verbose = _cli("--verbose", "info")
    assert verbose.returncode == 0
    assert "oneDNN" in verbose.stderr or "I0000" in verbose.stderr or "WARNING" in verbose.stderr


def test_bench_prints_no_log_noise():
    result = _cli("bench", "--only", "sum B1024", "--repeats", "1", "--min-seconds", "0",
                  "--rounds", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in ("I0000", "W0000", "E0000", "AutoGraph", "DeepCTR version",
                  "check the latest version"):
        assert noise not in result.stdout + result.stderr, noise
    assert "| SequencePooling sum B1024" in result.stdout


def test_deepctr_version_check_is_skipped():
    code = textwrap.dedent("""
        import sys, time, requests
        calls = []
        requests.get = lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(OSError())
        if sys.argv[1] == "quiet":
            from deepctr_ops._quiet import import_deepctr_without_version_check
            import_deepctr_without_version_check()
        else:
            import deepctr
        time.sleep(0.5)
        print(len(calls))
    """)
    plain, quiet = (subprocess.run([sys.executable, "-c", code, mode], capture_output=True,
                                   text=True, timeout=120) for mode in ("plain", "quiet"))
    # DeepCTR asks PyPI (and prints that it could not) ...
    assert plain.stdout.strip().splitlines()[-1] == "1", plain.stderr[-1000:]
    assert "check the latest version" in plain.stdout
    assert quiet.stdout.strip() == "0", quiet.stderr[-1000:]  # ... unless the CLI imports it.


def test_demo_trains_exports_and_serves_from_a_csv(tmp_path):
    # The main job end to end on a small CSV (written by the bundled generator):
    # DIN and DIEN train, AUC and examples/s are reported, and the exported
    # model's served scores equal the in-process ones (the command fails if not).
    from deepctr_ops.demo.data import auc, generate, read_csv, write_csv

    log = generate(samples=3000, max_len=12, seed=3)
    csv_path = tmp_path / "clicks.csv"
    write_csv(log, str(csv_path))
    back = read_csv(str(csv_path))
    np.testing.assert_array_equal(back.hist_items[:, :back.max_len], log.hist_items)
    np.testing.assert_array_equal(back.label, log.label)
    assert auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])) == 1.0
    assert auc(np.array([0, 1, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    result = _cli("demo", "--data", str(csv_path), "--epochs", "1", "--batch", "128",
                  "--out", str(tmp_path / "export"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "| DIN | " in result.stdout and "| DIEN | " in result.stdout
    assert "reloaded it in a fresh process" in result.stdout
    assert (tmp_path / "export" / "din_saved_model" / "saved_model.pb").exists()
