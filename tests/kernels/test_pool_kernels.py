"""The TF-free pooling kernels through the pybind11 module: CPU against the
float64 NumPy reference, GPU against the CPU (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from pool_reference import max_argmax, pool, random_rows

MODES = ["sum", "mean", "max"]
LAYOUTS = ["lengths", "mask", "ragged"]


def _case(rng, layout, b=7, t=6, e=37, dtype=np.float32, index=np.int64):
    """(values, rows, valid [B,T], divisor base [B], dense values [B,T,E] for the reference,
    padded)."""
    rows, valid = random_rows(rng, layout, b, t, index)
    dense = rng.standard_normal((b, t, e)).astype(dtype)
    if layout == "lengths":
        return dense, rows, valid, rows.astype(np.float64), dense, True
    divisor = valid.sum(axis=1).astype(np.float64)
    if layout == "mask":
        return dense, rows, valid, divisor, dense, True
    return dense[valid], rows, valid, divisor, dense, False


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_cpu_matches_reference(kernels, rng, layout, mode, dtype, index):
    values, rows, valid, divisor, dense, padded = _case(rng, layout, dtype=dtype, index=index)
    expected, expected_grad = pool(dense, valid, divisor, mode, padded=padded)
    out, _ = kernels.sequence_pool(values, rows, mode, layout, threads=3)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    ones = np.ones(out.shape, dtype)
    grad, _ = kernels.sequence_pool(values, rows, mode, layout, grad=ones, threads=3)
    if layout == "ragged":
        expected_grad = expected_grad[valid]
    np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_cpu_argmax_matches_reference(kernels, rng, layout, dtype):
    values, rows, valid, _, dense, padded = _case(rng, layout, e=70, dtype=dtype)
    # Small integers: many ties among valid steps, besides the empty rows'.
    values = np.round(values * 2).astype(dtype)
    dense = np.round(dense * 2).astype(dtype)
    _, _, argmax = kernels.sequence_pool(values, rows, "max", layout, threads=3,
                                         return_argmax=True)
    assert argmax.dtype == np.int32
    np.testing.assert_array_equal(argmax, max_argmax(dense, valid, padded))
    _, _, none = kernels.sequence_pool(values, rows, "sum", layout, return_argmax=True)
    assert none.shape == (0,)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_backward_with_tie_codes_matches_the_argmax_path(kernels, rng, layout, dtype):
    # Code -1 everywhere makes the backward re-read every column's steps.
    values, rows, *_ = _case(rng, layout, e=70, dtype=dtype)
    values = np.round(values * 2).astype(dtype)
    _, _, argmax = kernels.sequence_pool(values, rows, "max", layout, return_argmax=True)
    upstream = rng.standard_normal(argmax.shape).astype(dtype)
    fast, _ = kernels.sequence_pool(values, rows, "max", layout, grad=upstream, argmax=argmax)
    slow, _ = kernels.sequence_pool(values, rows, "max", layout, grad=upstream,
                                    argmax=np.full_like(argmax, -1))
    np.testing.assert_array_equal(fast, slow)
    with pytest.raises(ValueError, match="argmax"):
        kernels.sequence_pool(values, rows, "max", layout, grad=upstream,
                              argmax=argmax.astype(np.int64))


def test_threads_do_not_change_results(kernels, rng):
    values, rows, *_ = _case(rng, "lengths", b=50, t=9, e=130)
    single, _ = kernels.sequence_pool(values, rows, "mean", threads=1)
    many, _ = kernels.sequence_pool(values, rows, "mean", threads=7)
    np.testing.assert_array_equal(single, many)


def test_float16_rounds_the_float32_result(kernels, rng):
    values, rows, *_ = _case(rng, "lengths")
    values16 = values.astype(np.float16)
    out16, _ = kernels.sequence_pool(values16, rows, "mean")
    out32, _ = kernels.sequence_pool(values16.astype(np.float32), rows, "mean")
    np.testing.assert_array_equal(out16, out32.astype(np.float16))


def test_bad_arguments_raise_value_errors(kernels):
    with pytest.raises(ValueError, match="mode"):
        kernels.sequence_pool(np.ones((1, 2, 3), np.float32), np.array([1]), "median")
    with pytest.raises(ValueError, match="layout"):
        kernels.sequence_pool(np.ones((1, 2, 3), np.float32), np.array([1]), "sum", "dense")
    with pytest.raises(ValueError, match="row_splits"):
        kernels.sequence_pool(np.ones((3, 2), np.float32), np.array([0, 5]), "sum", "ragged")


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_gpu_matches_cpu(gpu_kernels, rng, layout, mode, dtype):
    values, rows, *_ = _case(rng, layout, b=33, t=17, e=70, dtype=dtype)
    cpu, _ = gpu_kernels.sequence_pool(values, rows, mode, layout)
    gpu, _ = gpu_kernels.sequence_pool(values, rows, mode, layout, device="gpu")
    tol = {np.float32: 1e-6, np.float64: 1e-12, np.float16: 1e-3}[dtype]
    np.testing.assert_allclose(gpu.astype(np.float64), cpu.astype(np.float64), rtol=tol, atol=tol)
    upstream = rng.standard_normal(cpu.shape).astype(dtype)
    cpu_grad, _ = gpu_kernels.sequence_pool(values, rows, mode, layout, grad=upstream)
    gpu_grad, _ = gpu_kernels.sequence_pool(values, rows, mode, layout, grad=upstream,
                                            device="gpu")
    np.testing.assert_allclose(gpu_grad.astype(np.float64), cpu_grad.astype(np.float64),
                               rtol=tol, atol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_gpu_max_argmax_and_gradient_match_cpu_exactly(gpu_kernels, rng, layout, dtype):
    values, rows, *_ = _case(rng, layout, b=33, t=17, e=70, dtype=dtype)
    values = np.round(values * 2).astype(dtype)  # Many ties.
    cpu, _, cpu_argmax = gpu_kernels.sequence_pool(values, rows, "max", layout,
                                                   return_argmax=True)
    gpu, _, gpu_argmax = gpu_kernels.sequence_pool(values, rows, "max", layout, device="gpu",
                                                   return_argmax=True)
    np.testing.assert_array_equal(gpu, cpu)
    np.testing.assert_array_equal(gpu_argmax, cpu_argmax)
    upstream = rng.standard_normal(cpu.shape).astype(dtype)
    cpu_grad, _ = gpu_kernels.sequence_pool(values, rows, "max", layout, grad=upstream,
                                            argmax=cpu_argmax)
    for argmax in (gpu_argmax, np.full_like(gpu_argmax, -1)):
        gpu_grad, _ = gpu_kernels.sequence_pool(values, rows, "max", layout, grad=upstream,
                                                argmax=argmax, device="gpu")
        np.testing.assert_array_equal(gpu_grad, cpu_grad)


@pytest.mark.gpu
def test_gpu_clamps_bad_row_splits_instead_of_reading_out_of_bounds(gpu_kernels):
    # The CPU rejects these; the GPU op cannot check without a sync, so the
    # kernel clamps every split into [previous split, num_values].
    values = np.ones((3, 2), np.float32)
    bad = np.array([0, 9, 2], np.int64)
    with pytest.raises(ValueError, match="row_splits"):
        gpu_kernels.sequence_pool(values, bad, "sum", "ragged", device="gpu")
    out, _ = gpu_kernels.sequence_pool(values, bad, "sum", "ragged", device="gpu",
                                       validate=False)
    np.testing.assert_array_equal(out[:, 0, :], [[3.0, 3.0], [0.0, 0.0]])
    # Splits that leave value rows uncovered: those rows' gradient is 0.
    short = np.array([0, 1, 1], np.int64)
    grad, _ = gpu_kernels.sequence_pool(values, short, "sum", "ragged", grad=np.ones((2, 1, 2),
                                        np.float32), device="gpu", validate=False)
    np.testing.assert_array_equal(grad, [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_gradients_take_the_streaming_store_path(kernels, rng, mode, dtype):
    # Above 8 MiB the CPU backward writes with non-temporal stores.
    b, t, e = 80, 200, 136 if dtype == np.float32 else 72
    values = rng.standard_normal((b, t, e)).astype(dtype)
    assert values.nbytes >= 8 << 20
    lengths = rng.integers(0, t + 1, size=b)
    lengths[:2] = [0, t]
    upstream = rng.standard_normal((b, 1, e)).astype(dtype)
    grad, _ = kernels.sequence_pool(values, lengths, mode, grad=upstream)
    _, unit_grad = pool(values, np.arange(t)[None, :] < lengths[:, None],
                        lengths.astype(np.float64), mode)
    np.testing.assert_allclose(grad, unit_grad * upstream, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("layout", ["lengths", "mask"])
@pytest.mark.parametrize("mode", MODES)
def test_cpu_large_inputs_match_reference(kernels, rng, layout, mode):
    # Over 8 MB of valid steps: the forward's cross-row prefetcher runs (see
    # StepPrefetcher). E = 80 is two column blocks, and 3 threads over
    # 2 * 1501 units start one thread's share in the middle of a row.
    b, t, e = 1501, 40, 80
    dense = rng.standard_normal((b, t, e)).astype(np.float32)
    if layout == "lengths":
        rows = rng.integers(t // 2, t + 3, size=b).astype(np.int64)
        rows[:4] = [0, -2, t, t + 7]
        rows[-1] = 0  # The last row is empty: max reads its padding.
        valid = np.arange(t)[None, :] < rows[:, None]
        divisor = rows.astype(np.float64)
    else:
        rows = rng.random((b, t)) < 0.8
        rows[[0, 7, b - 1]] = False
        valid = rows
        divisor = rows.sum(axis=1).astype(np.float64)
    assert valid.sum() * e * 4 >= 8 << 20
    expected, expected_grad = pool(dense, valid, divisor, mode, padded=True)
    out, _ = kernels.sequence_pool(dense, rows, mode, layout, threads=3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    grad, _ = kernels.sequence_pool(dense, rows, mode, layout, grad=np.ones(out.shape, np.float32),
                                    threads=3)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-6)
