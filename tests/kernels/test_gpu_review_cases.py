"""GPU pooling against the CPU kernel on the edge cases of the contract
(sequence_pool.h) that test_pool_kernels.py does not reach: empty shapes,
special values, arbitrary argmax codes, int32 indices, wide rows that span
several blocks, and out-of-range or decreasing row_splits, which the GPU makes
monotone instead of rejecting them. Skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from pool_reference import random_rows

MODES = ["sum", "mean", "max"]
LAYOUTS = ["lengths", "mask", "ragged"]

pytestmark = pytest.mark.gpu


def _values(rng, layout, valid, e, dtype, special):
    b, t = valid.shape
    dense = np.round(rng.standard_normal((b, t, e)) * 2)  # Small integers: ties.
    if special:
        pick = rng.random(dense.shape)
        dense[pick < 0.05] = np.nan
        dense[(pick >= 0.05) & (pick < 0.10)] = -np.inf
        dense[(pick >= 0.10) & (pick < 0.15)] = -0.0
    dense = dense.astype(dtype)
    return dense[valid] if layout == "ragged" else dense


def _both(kernels, values, rows, mode, layout, **kwargs):
    cpu = kernels.sequence_pool(values, rows, mode, layout, **kwargs)
    gpu = kernels.sequence_pool(values, rows, mode, layout, device="gpu", **kwargs)
    return cpu, gpu


def _assert_close(gpu, cpu, dtype):
    tol = 1e-3 if np.dtype(dtype).itemsize == 2 else 1e-6
    np.testing.assert_allclose(gpu.astype(np.float64), cpu.astype(np.float64), rtol=tol,
                               atol=tol, equal_nan=True)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("b,t,e", [(0, 4, 3), (3, 0, 5), (4, 5, 0)])
def test_gpu_empty_shapes_match_cpu(gpu_kernels, rng, layout, mode, b, t, e):
    rows, valid = random_rows(rng, layout, b, t, np.int64)
    values = _values(rng, layout, valid, e, np.float32, special=False)
    (cpu, _, cpu_argmax), (gpu, _, gpu_argmax) = _both(gpu_kernels, values, rows, mode, layout,
                                                      return_argmax=True)
    np.testing.assert_array_equal(gpu, cpu)
    np.testing.assert_array_equal(gpu_argmax, cpu_argmax)
    upstream = rng.standard_normal(cpu.shape).astype(np.float32)
    extra = {"argmax": cpu_argmax} if mode == "max" else {}
    (cpu_grad, _), (gpu_grad, _) = _both(gpu_kernels, values, rows, mode, layout,
                                         grad=upstream, **extra)
    assert gpu_grad.shape == values.shape
    np.testing.assert_array_equal(gpu_grad, cpu_grad)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_gpu_max_special_values_and_any_argmax_match_cpu_exactly(gpu_kernels, rng, layout,
                                                                 dtype, index):
    # E = 300 > 256 threads: one batch row spans two blocks.
    b, t, e = 9, 13, 300
    rows, valid = random_rows(rng, layout, b, t, index)
    values = _values(rng, layout, valid, e, dtype, special=True)
    (cpu, _, cpu_argmax), (gpu, _, gpu_argmax) = _both(gpu_kernels, values, rows, "max", layout,
                                                      return_argmax=True)
    np.testing.assert_array_equal(gpu, cpu)
    np.testing.assert_array_equal(gpu_argmax, cpu_argmax)
    upstream = rng.standard_normal(cpu.shape).astype(dtype)
    # The forward's codes, "all tied", and arbitrary codes: an argmax >= 0 that
    # is not a competing step of its row gets no gradient.
    arbitrary = rng.integers(-2, t + 3, size=cpu_argmax.shape).astype(np.int32)
    for argmax in (cpu_argmax, np.full_like(cpu_argmax, -1), arbitrary):
        (cpu_grad, _), (gpu_grad, _) = _both(gpu_kernels, values, rows, "max", layout,
                                             grad=upstream, argmax=argmax)
        np.testing.assert_array_equal(gpu_grad, cpu_grad)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_gpu_sum_mean_special_values_match_cpu(gpu_kernels, rng, layout, mode, index):
    rows, valid = random_rows(rng, layout, 9, 13, index)
    values = _values(rng, layout, valid, 300, np.float32, special=True)
    (cpu, _), (gpu, _) = _both(gpu_kernels, values, rows, mode, layout)
    _assert_close(gpu, cpu, np.float32)
    upstream = rng.standard_normal(cpu.shape).astype(np.float32)
    (cpu_grad, _), (gpu_grad, _) = _both(gpu_kernels, values, rows, mode, layout, grad=upstream)
    _assert_close(gpu_grad, cpu_grad, np.float32)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_gpu_bfloat16_matches_cpu(gpu_kernels, rng, layout, mode):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rows, valid = random_rows(rng, layout, 9, 13, np.int64)
    values = _values(rng, layout, valid, 70, np.float32, special=False).astype(
        ml_dtypes.bfloat16)
    (cpu, _, cpu_argmax), (gpu, _, gpu_argmax) = _both(gpu_kernels, values, rows, mode, layout,
                                                      return_argmax=True)
    np.testing.assert_array_equal(gpu_argmax, cpu_argmax)
    if mode == "max":
        np.testing.assert_array_equal(gpu.astype(np.float32), cpu.astype(np.float32))
    else:
        np.testing.assert_allclose(gpu.astype(np.float32), cpu.astype(np.float32), rtol=1e-2)
    upstream = rng.standard_normal(cpu.shape).astype(ml_dtypes.bfloat16)
    extra = {"argmax": cpu_argmax} if mode == "max" else {}
    (cpu_grad, _), (gpu_grad, _) = _both(gpu_kernels, values, rows, mode, layout,
                                         grad=upstream, **extra)
    np.testing.assert_array_equal(gpu_grad.astype(np.float32), cpu_grad.astype(np.float32))


@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_gpu_clamps_out_of_range_splits_like_plan_row(gpu_kernels, rng, index):
    # Non-decreasing but not starting at 0 and running past the values: rows
    # are [clamp(s[b], 0, N), clamp(s[b+1], that, N)); uncovered values get 0.
    values = rng.standard_normal((5, 4)).astype(np.float32)
    splits = np.array([2, 3, 3, 9], index)
    spans = [(2, 3), (3, 3), (3, 5)]
    upstream = rng.standard_normal((3, 1, 4)).astype(np.float32)
    for mode in MODES:
        out, _ = gpu_kernels.sequence_pool(values, splits, mode, "ragged", device="gpu",
                                           validate=False)
        grad, _ = gpu_kernels.sequence_pool(values, splits, mode, "ragged", grad=upstream,
                                            device="gpu", validate=False)
        expected_grad = np.zeros_like(values)
        for i, (lo, hi) in enumerate(spans):
            x = values[lo:hi]
            if mode == "sum":
                expected, share = x.sum(axis=0), np.ones_like(x)
            elif mode == "mean":
                d = np.float32(hi - lo) + np.float32(1e-8)
                expected, share = x.sum(axis=0) / d, np.full_like(x, 1 / d)
            elif hi == lo:
                expected, share = np.full(4, -1e9, np.float32), x
            else:
                expected = x.max(axis=0)
                share = (x == expected) / (x == expected).sum(axis=0)
            np.testing.assert_allclose(out[i, 0], expected, rtol=1e-6)
            expected_grad[lo:hi] = share * upstream[i, 0]
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("mode", MODES)
def test_gpu_decreasing_splits_give_empty_rows_deterministically(gpu_kernels, rng, index, mode):
    # The GPU pools over monotone[b] = max(clamp(splits[j], 0, N) for j <= b)
    # (LaunchMonotoneRowSplits): a split that decreases ends an empty row, rows
    # never overlap, and the result is the CPU's on those valid splits.
    n, e = 40, 33
    values = np.round(rng.standard_normal((n, e)) * 2).astype(np.float32)  # Ties too.
    for _ in range(5):
        splits = np.sort(rng.integers(-5, n + 6, size=9))
        swap = rng.integers(1, 8, size=3)
        splits[swap], splits[swap + 1] = splits[swap + 1], splits[swap].copy()
        splits = splits.astype(index)
        monotone = np.maximum.accumulate(np.clip(splits.astype(np.int64), 0, n))
        lo, hi = int(monotone[0]), int(monotone[-1])
        inside = values[lo:hi]
        local = (monotone - lo).astype(index)
        upstream = rng.standard_normal((len(splits) - 1, 1, e)).astype(np.float32)
        cpu, _, argmax = gpu_kernels.sequence_pool(inside, local, mode, "ragged",
                                                   return_argmax=True)
        cpu_grad, _ = gpu_kernels.sequence_pool(inside, local, mode, "ragged", grad=upstream)
        runs = []
        for _ in range(2):
            gpu, _ = gpu_kernels.sequence_pool(values, splits, mode, "ragged", device="gpu",
                                               validate=False)
            gpu_grad, _ = gpu_kernels.sequence_pool(values, splits, mode, "ragged",
                                                    grad=upstream, device="gpu",
                                                    validate=False)
            runs.append((gpu, gpu_grad))
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        np.testing.assert_array_equal(runs[0][1], runs[1][1])
        gpu, gpu_grad = runs[0]
        np.testing.assert_allclose(gpu, cpu, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(gpu_grad[lo:hi], cpu_grad, rtol=1e-6, atol=1e-7)
        assert not gpu_grad[:lo].any() and not gpu_grad[hi:].any()
