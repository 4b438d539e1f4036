"""tools/gru_floor.py: its timing binary builds from the kernels' own sources
and measures what it reports; its bounds are the arithmetic of those
measurements. (No timing is asserted: only counts, determinism and the math.)"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_tool():
    spec = importlib.util.spec_from_file_location("gru_floor", ROOT / "tools" / "gru_floor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gru_floor = _load_tool()


def _require_compiler():
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed (the package build needs it too)")


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    _require_compiler()
    return gru_floor.build(tmp_path_factory.mktemp("gru_floor"))


@pytest.mark.parametrize("cell,directions", [("GRU", 1), ("AUGRU", 1), ("GRU", 2)])
def test_kernel_timing_counts_the_valid_steps_and_gives_the_same_bits_on_two_threads(
        binary, cell, directions):
    batch, time, emb = 70, 12, 16
    one = gru_floor.run(binary, "kernels", batch, time, emb, 1, cell, 1, directions)
    two = gru_floor.run(binary, "kernels", batch, time, emb, 2, cell, 1, directions)
    steps = int(one["valid_steps"])
    assert 0 < steps < batch * time
    assert two["valid_steps"] == one["valid_steps"]
    # 2 (E + u) 3u flops per valid step and direction forward, twice that
    # backward (u = E).
    assert float(one["fwd_gflop"]) == pytest.approx(
        directions * 2 * steps * 2 * emb * 3 * emb / 1e9, rel=1e-5)
    assert float(one["bwd_gflop"]) == pytest.approx(2 * float(one["fwd_gflop"]), rel=1e-5)
    # Outputs and gradients summed: the kernels are deterministic across threads.
    assert two["checksum"] == one["checksum"]
    assert float(one["fwd_ms"]) > 0 and float(one["bwd_ms"]) > 0


def test_gemm_and_peak_modes_report_a_rate_and_the_instruction_set(binary):
    gemm = gru_floor.run(binary, "gemm", 16, 16, 5)
    peak = gru_floor.run(binary, "peak", 1)
    assert float(gemm["gflop_per_s"]) > 0
    assert gemm["isa"] == peak["isa"] in {"avx512", "avx2", "avx"}


def test_unknown_mode_or_cell_fails(binary):
    with pytest.raises(subprocess.CalledProcessError):
        gru_floor.run(binary, "kernels", 4, 4, 4, 1, "LSTM", 1)
    with pytest.raises(subprocess.CalledProcessError):
        gru_floor.run(binary, "transpose", 1)
    with pytest.raises(subprocess.CalledProcessError):
        gru_floor.run(binary, "kernels", 4, 4, 4, 1, "GRU", 1, 3)


def test_bounds_are_the_big_calls_flops_at_each_measured_rate():
    measured = {
        "big": {"valid_steps": 1000, "fwd_gflop": 2.0, "bwd_gflop": 4.0, "fwd_ms": 10.0,
                "bwd_ms": 20.0},
        "big_1thread": {"fwd_gflop": 2.0, "bwd_gflop": 4.0, "fwd_ms": 18.0, "bwd_ms": 36.0},
        "l3": {"fwd_gflop": 0.1, "bwd_gflop": 0.2, "fwd_ms": 0.5, "bwd_ms": 0.8},
        "gemm": {"gflop_per_s": 200.0, "isa": "avx512"},
        "peak": {"gflop_per_s": 250.0, "isa": "avx512"},
    }
    ms = {what: value for what, value, _ in gru_floor.bounds(measured, threads=2)}
    assert ms == pytest.approx({
        "FMA peak": 6.0 / (2 * 250.0) * 1e3,
        "step GEMMs alone": 6.0 / (2 * 200.0) * 1e3,
        # fwd at 0.2 GFLOP/ms, bwd at 0.25, on two threads.
        "kernels, data in L3": (2.0 / 0.2 + 4.0 / 0.25) / 2,
        "kernels, 1 thread / N": 54.0 / 2,
        "kernels, 2 threads (measured)": 30.0,
    })
    table = gru_floor.report(measured, 2, "GRU", target_ms=14.0)
    assert "| FMA peak | 12.00 | yes |" in table
    assert "| kernels, data in L3 | 13.00 | yes |" in table
    assert "| kernels, 2 threads (measured) | 30.00 | no |" in table


def test_build_only_keeps_the_binary_in_the_build_dir(tmp_path, capsys):
    _require_compiler()
    assert gru_floor.main(["--build-dir", str(tmp_path / "out"), "--build-only"]) == 0
    binary = Path(capsys.readouterr().out.strip())
    assert binary == tmp_path / "out" / "kernel_timing" and binary.is_file()
    assert 0 < int(gru_floor.run(binary, "kernels", 16, 4, 8, 1, "GRU", 1)["valid_steps"]) <= 64
