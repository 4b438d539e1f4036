"""The fused embedding pooling kernels through the pybind11 module: the CPU
kernel against the NumPy reference (embedding_pool_reference.py), the CUDA
kernels' code emulated on the host against the CPU, and the GPU against the
CPU (skipped without a GPU)."""

from __future__ import annotations

import re

import embedding_pool_reference as ref
import numpy as np
import pytest
from pool_reference import random_rows

MODES = ["sum", "mean", "max"]
LAYOUTS = ["lengths", "mask", "ragged"]


def _dtype(name):
    if name == "bfloat16":
        return pytest.importorskip("ml_dtypes").bfloat16
    return np.dtype(name)


def _tol(dtype):
    size = np.dtype(dtype).itemsize
    if np.dtype(dtype).name == "bfloat16":
        return 1e-2
    return {2: 2e-3, 4: 2e-5, 8: 1e-12}[size]


def _case(rng, layout, b=7, t=6, e=37, vocab=11, dtype=np.float64, id_dtype=np.int64,
          index=np.int64, weighted=True, integers=False):
    """(table, ids, rows, weights): ids in [0, vocab) with zeros (for mask_zero),
    row 1 all zeros. random_rows gives lengths 0, T, > T and negative, an
    all-False mask row and an empty ragged row."""
    rows, valid = random_rows(rng, layout, b, t, index)
    if layout == "lengths" and b > 3:
        rows[3] = -2  # Besides random_rows' 0, T and T + 5.
        valid[3] = False
    n = int(valid.sum()) if layout == "ragged" else b * t
    ids = rng.integers(0, vocab, size=n)
    ids[rng.random(n) < 0.2] = 0
    if layout != "ragged":
        ids = ids.reshape(b, t)
        if b > 1:
            ids[1] = 0
    ids = ids.astype(id_dtype)
    table = rng.standard_normal((vocab, e))
    if integers:
        table = np.round(table * 2)  # Many ties.
    table = table.astype(dtype)
    weights = rng.uniform(0.5, 2.0, size=ids.shape).astype(dtype) if weighted else None
    return table, ids, rows, weights


def _exact(actual, expected):
    """Bit-for-bit up to NaN payloads; 16-bit floats through float64, where NumPy
    treats NaN as equal to NaN (it does not for ml_dtypes' bfloat16)."""
    def wide(a):
        a = np.asarray(a)
        return a.astype(np.float64) if a.dtype.kind != "i" and a.dtype.itemsize == 2 else a
    np.testing.assert_array_equal(wide(actual), wide(expected))


def _close(actual, expected, dtype, equal_nan=False):
    tol = _tol(dtype)
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=tol, atol=tol,
                               equal_nan=equal_nan)


BACKWARD_ONLY = ("scan_threads", "cache_columns")


def _run_both(kernels, table, ids, rows, layout, mode, weights, mask_zero, device="cpu",
              **kwargs):
    """Forward, then backward with the forward's argmax for a random grad:
    (pooled, argmax, grad, (values, indices, grad_weights))."""
    forward_kwargs = {k: v for k, v in kwargs.items() if k not in BACKWARD_ONLY}
    pooled, argmax, _ = kernels.embedding_pool_forward(
        table, ids, rows, layout, weights, mode, mask_zero, device=device, **forward_kwargs)
    grad = np.random.default_rng(7).standard_normal(pooled.shape).astype(table.dtype)
    back = kernels.embedding_pool_backward(
        table, ids, rows, grad, layout, weights, argmax if mode == "max" else None, mode,
        mask_zero, device=device, **kwargs)
    return pooled, argmax, grad, back[:3]


def _check_against_reference(kernels, table, ids, rows, layout, mode, weights, mask_zero,
                             equal_nan=False, **kwargs):
    pooled, argmax, grad, (values, indices, grad_weights) = _run_both(
        kernels, table, ids, rows, layout, mode, weights, mask_zero, **kwargs)
    expected, expected_argmax = ref.forward(table, ids, rows, layout, mode, weights, mask_zero)
    dtype = table.dtype
    if mode == "max":
        # Max is exact: the reference decides in the accumulation type.
        with np.errstate(over="ignore"):  # -1e9 is -inf in float16.
            rounded = expected.astype(dtype).astype(np.float64)
        np.testing.assert_array_equal(pooled.astype(np.float64), rounded)
        np.testing.assert_array_equal(argmax, expected_argmax)
    else:
        assert argmax.shape == (0,)
        _close(pooled, expected, dtype, equal_nan)
    e_values, e_indices, e_grad_weights = ref.backward(table, ids, rows, layout, mode, grad,
                                                       weights, mask_zero)
    assert indices.dtype == ids.dtype
    np.testing.assert_array_equal(indices, e_indices)
    assert values.shape == e_values.shape and values.dtype == dtype
    _close(values, e_values, dtype, equal_nan)
    if weights is None:
        assert grad_weights.shape == (0,)
    else:
        assert grad_weights.shape == ids.shape
        _close(grad_weights, e_grad_weights, dtype, equal_nan)


# ---- CPU kernel against the reference --------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_cpu_matches_reference(kernels, rng, layout, mode, mask_zero, weighted):
    table, ids, rows, weights = _case(rng, layout, weighted=weighted)
    _check_against_reference(kernels, table, ids, rows, layout, mode, weights, mask_zero,
                             threads=3)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cpu_dtypes_match_reference(kernels, rng, dtype, id_dtype, index, layout):
    for mode in MODES:
        table, ids, rows, weights = _case(rng, layout, e=19, dtype=_dtype(dtype),
                                          id_dtype=id_dtype, index=index)
        _check_against_reference(kernels, table, ids, rows, layout, mode, weights,
                                 mask_zero=mode != "sum", threads=2)


@pytest.mark.parametrize("e", [1, 8, 16, 32, 64, 65, 130])
def test_cpu_column_blocks_match_reference(kernels, rng, e):
    # The CPU pools blocks of up to 64 columns, with fixed widths 8 to 64.
    for layout in LAYOUTS:
        for mode in MODES:
            table, ids, rows, weights = _case(rng, layout, b=5, e=e, dtype=np.float32,
                                              integers=mode == "max")
            _check_against_reference(kernels, table, ids, rows, layout, mode, weights,
                                     mask_zero=layout == "mask", threads=2)


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_cpu_large_gradient_streamed_stores(kernels, rng, mode):
    # >= 8 MiB of gradient rows: the CPU writes them with streaming stores.
    b, t, e = 1800, 24, 128
    table, ids, lengths, weights = _case(rng, "lengths", b=b, t=t, e=e, vocab=300,
                                         dtype=np.float32)
    grad = rng.standard_normal((b, 1, e)).astype(np.float32)
    values, indices, _, _ = kernels.embedding_pool_backward(table, ids, lengths, grad,
                                                            weights=weights, mode=mode)
    valid = np.arange(t)[None, :] < np.clip(lengths, 0, t)[:, None]
    assert values.nbytes >= 8 << 20
    g = grad[:, 0]
    if mode == "mean":
        g = g / (lengths.astype(np.float32) + np.float32(1e-8))[:, None]
    rows_of_steps = np.nonzero(valid)[0]
    expected = g[rows_of_steps] * weights[valid][:, None]  # float32, as the kernel rounds.
    np.testing.assert_array_equal(indices, ids[valid])
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("e", [23, 32, 64])
def test_cpu_max_ties_nan_inf_match_reference(kernels, rng, layout, dtype, mask_zero, e):
    # e = 32 and 64 take the unweighted whole-row vector path (PlainMaxRow),
    # which hands a row with a NaN back to the per-column path.
    table, ids, rows, weights = _case(rng, layout, e=e, dtype=_dtype(dtype), integers=True,
                                      weighted=False)
    table[3, :4] = np.nan
    table[4, 2:6] = np.inf
    table[5, 5:9] = -np.inf
    table[6] = table[7]  # Two ids with equal rows tie in every column.
    for weighted in (None, np.ones(ids.shape, table.dtype)):
        _check_against_reference(kernels, table, ids, rows, layout, "max", weighted,
                                 mask_zero, equal_nan=True)


def test_cpu_reads_no_row_it_does_not_pool(kernels, rng):
    # Padding, masked-out and (mask_zero) zero ids are never read: NaN there
    # does not leak into sum, mean or a max row that has a valid step.
    table = rng.standard_normal((5, 4))
    table[0] = np.nan
    ids = np.array([[1, 2, 0, 0], [3, 0, 4, 0]])
    lengths = np.array([2, 3])
    for mode in MODES:
        out, _, _ = kernels.embedding_pool_forward(table, ids, lengths, mode=mode,
                                                   mask_zero=True)
        assert np.isfinite(out).all(), mode
        out, _, _ = kernels.embedding_pool_forward(table, ids, lengths, mode=mode)
        assert np.isnan(out[1]).all() and np.isfinite(out[0]).all(), mode


def test_cpu_mean_divisor_with_and_without_mask_zero(kernels):
    # mask_zero divides by the valid ids (+1e-8); otherwise by the raw length.
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    ids = np.array([[1, 0, 2, 3]])
    lengths = np.array([9])
    out, _, _ = kernels.embedding_pool_forward(table, ids, lengths, mode="mean")
    np.testing.assert_allclose(out[0, 0], table[[1, 0, 2, 3]].sum(axis=0) / (9 + 1e-8))
    out, _, _ = kernels.embedding_pool_forward(table, ids, lengths, mode="mean", mask_zero=True)
    np.testing.assert_allclose(out[0, 0], table[[1, 2, 3]].sum(axis=0) / (3 + 1e-8))


def test_cpu_max_empty_rows(kernels):
    # A dense row with no valid step competes all its steps shifted by -1e9
    # (and every step gets a gradient row); a ragged one pools -1e9, no step.
    table = np.array([[0.0, 5.0], [1.0, 2.0], [3.0, -1.0]])
    ids = np.array([[0, 2, 1], [1, 2, 0]])
    out, argmax, _ = kernels.embedding_pool_forward(table, ids, np.array([0, 2]), mode="max",
                                                    mask_zero=False)
    np.testing.assert_array_equal(out[0, 0], [3.0 - 1e9, 5.0 - 1e9])
    np.testing.assert_array_equal(argmax[0, 0], [1, 0])
    values, indices, _, _ = kernels.embedding_pool_backward(
        table, ids, np.array([0, 2]), np.ones((2, 1, 2)), mode="max")
    np.testing.assert_array_equal(indices, [0, 2, 1, 1, 2])
    np.testing.assert_array_equal(values[:3], [[0, 1], [1, 0], [0, 0]])
    splits = np.array([0, 0, 2])
    flat = np.array([1, 2])
    out, argmax, _ = kernels.embedding_pool_forward(table, flat, splits, "ragged", mode="max")
    np.testing.assert_array_equal(out[0, 0], [-1e9, -1e9])
    np.testing.assert_array_equal(argmax[0, 0], [-2, -2])
    # mask_zero: a ragged row of zero ids pools like an empty one.
    out, argmax, _ = kernels.embedding_pool_forward(table, np.array([0, 0, 2]),
                                                    np.array([0, 2, 3]), "ragged", mode="max",
                                                    mask_zero=True)
    np.testing.assert_array_equal(out[0, 0], [-1e9, -1e9])
    np.testing.assert_array_equal(argmax[:, 0], [[-2, -2], [0, 0]])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_cpu_bad_id_is_a_value_error_naming_it(kernels, rng, layout, mode):
    table, ids, rows, weights = _case(rng, layout, b=5, t=4, e=3, vocab=10)
    flat = ids.reshape(-1)
    read = ref.plan_rows(ids, rows, layout, mode)
    steps = np.concatenate([r.pooled for r in read])
    # Two bad ids in read steps: the lower step is named, whatever the threads.
    flat[steps[-1]] = -3
    flat[steps[len(steps) // 2]] = 17
    step, bad = ref.first_bad_read(ids, rows, layout, mode, vocab=10)
    t = ids.shape[1] if layout != "ragged" else None
    where = f"ids[{step}]" if t is None else f"ids[{step // t}, {step % t}]"
    message = rf"{re.escape(where)} = {bad} is not in \[0, 10\)"
    grad = np.ones((len(read), 1, 3))
    for threads in (1, 4):
        with pytest.raises(ValueError, match=message):
            kernels.embedding_pool_forward(table, ids, rows, layout, weights, mode,
                                           threads=threads)
        argmax = np.full((len(read), 1, 3), -1, np.int32) if mode == "max" else None
        with pytest.raises(ValueError, match=message):
            kernels.embedding_pool_backward(table, ids, rows, grad, layout, weights, argmax,
                                            mode, threads=threads)


@pytest.mark.parametrize("layout", ["lengths", "mask"])
def test_cpu_bad_id_in_padding_is_not_read(kernels, rng, layout):
    table = rng.standard_normal((6, 3))
    ids = np.array([[1, 2, 99], [3, -1, 4]])
    rows = np.array([2, 1]) if layout == "lengths" else np.array([[1, 1, 0], [1, 0, 0]], bool)
    for mode in MODES:
        out, _, _ = kernels.embedding_pool_forward(table, ids, rows, layout, mode=mode)
        expected, _ = ref.forward(table, np.where((ids < 0) | (ids > 5), 0, ids), rows, layout,
                                  mode)
        np.testing.assert_allclose(out, expected, rtol=1e-12)
        kernels.embedding_pool_backward(table, ids, rows, np.ones(out.shape), layout, mode=mode)
    # mask_zero: an id 0 is not valid; a bad id elsewhere in the row still is.
    ids = np.array([[0, 7, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match=r"ids\[0, 1\] = 7"):
        kernels.embedding_pool_forward(table, ids, np.array([3, 3]), mode="sum", mask_zero=True)
    # Max reads the padding of a row that has no valid step: there it is checked.
    ids = np.array([[1, 9, 1], [2, 2, 2]])
    with pytest.raises(ValueError, match=r"ids\[0, 1\] = 9 is not in \[0, 6\)"):
        kernels.embedding_pool_forward(table, ids, np.array([0, 3]), mode="max")
    out, _, _ = kernels.embedding_pool_forward(table, ids, np.array([0, 3]), mode="sum")
    np.testing.assert_allclose(out[1, 0], 3 * table[2])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_cpu_threads_are_bit_identical(kernels, rng, layout, mode):
    table, ids, rows, weights = _case(rng, layout, b=60, t=9, e=70, vocab=40, dtype=np.float32)
    single = _run_both(kernels, table, ids, rows, layout, mode, weights, True, threads=1)
    many = _run_both(kernels, table, ids, rows, layout, mode, weights, True, threads=5)
    np.testing.assert_array_equal(single[0], many[0])
    np.testing.assert_array_equal(single[1], many[1])
    for a, b in zip(single[3], many[3]):
        np.testing.assert_array_equal(a, b)


def test_argument_errors(kernels, rng):
    table, ids, rows, _ = _case(rng, "lengths", b=3, t=4, e=5)
    with pytest.raises(ValueError, match="layout must be"):
        kernels.embedding_pool_forward(table, ids, rows, "dense")
    with pytest.raises(ValueError, match="device must be"):
        kernels.embedding_pool_forward(table, ids, rows, device="tpu")
    with pytest.raises(ValueError, match="ids must be int32 or int64"):
        kernels.embedding_pool_forward(table, ids.astype(np.float32), rows)
    with pytest.raises(ValueError, match="weights must have the shape of ids"):
        kernels.embedding_pool_forward(table, ids, rows, weights=np.ones((3, 3)))
    with pytest.raises(ValueError, match="mask must have the shape of ids"):
        kernels.embedding_pool_forward(table, ids, np.ones((3, 5), bool), "mask")
    with pytest.raises(ValueError, match="grad must be"):
        kernels.embedding_pool_backward(table, ids, rows, np.ones((3, 1, 4)))
    with pytest.raises(ValueError, match="argmax must be an int32"):
        kernels.embedding_pool_backward(table, ids, rows, np.ones((3, 1, 5)), mode="max",
                                        argmax=np.zeros((3, 1, 5), np.int64))
    with pytest.raises(ValueError, match="row_splits"):
        kernels.embedding_pool_forward(table, ids.reshape(-1), np.array([0, 5, 4, 12]),
                                       "ragged")


# ---- the CUDA kernels' code, emulated on the host, against the CPU ---------
# (embedding_pool_device.h: the GPU's per-thread code and the phases of its
# blocks, run thread by thread.) Forward, argmax, offsets, indices and values
# are bit-identical; grad_weights too with one thread per block, else the
# block's tree sum rounds differently from the CPU's sequential dot.


def _emulated_vs_cpu(kernels, table, ids, rows, layout, mode, weights, mask_zero, threads=0,
                     **kwargs):
    cpu = _run_both(kernels, table, ids, rows, layout, mode, weights, mask_zero)
    emu = _run_both(kernels, table, ids, rows, layout, mode, weights, mask_zero,
                    device="emulated", threads=threads, **kwargs)
    _exact(emu[0], cpu[0])
    _exact(emu[1], cpu[1])
    for a, b in zip(emu[3][:2], cpu[3][:2]):
        _exact(a, b)
    if threads == 1:
        _exact(emu[3][2], cpu[3][2])
    else:
        _close(emu[3][2], np.asarray(cpu[3][2], np.float64), table.dtype, equal_nan=True)
    return cpu, emu


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_emulated_gpu_code_matches_cpu(kernels, rng, layout, mode, dtype):
    table, ids, rows, weights = _case(rng, layout, dtype=_dtype(dtype), integers=mode == "max",
                                      id_dtype=np.int32, index=np.int32)
    for mask_zero in (False, True):
        for threads in (0, 1, 4):
            _emulated_vs_cpu(kernels, table, ids, rows, layout, mode, weights, mask_zero,
                             threads=threads, scan_threads=threads or 0)
    _emulated_vs_cpu(kernels, table, ids, rows, layout, mode, None, True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_emulated_max_ties_nan_and_column_cache(kernels, rng, layout):
    # E = 300: 256 threads, some owning two columns; without the cache every
    # tied column is recomputed at each step.
    table, ids, rows, weights = _case(rng, layout, e=300, integers=True, dtype=np.float32)
    table[3, :40] = np.nan
    table[4, 20:80] = -np.inf
    for cache in (True, False):
        for weights_in in (weights, None):
            _emulated_vs_cpu(kernels, table, ids, rows, layout, "max", weights_in, False,
                             cache_columns=cache)
    # Arbitrary argmax codes (any column may claim any step, or none).
    _, argmax, _ = kernels.embedding_pool_forward(table, ids, rows, layout, None, "max")
    codes = rng.integers(-2, 9, size=argmax.shape).astype(np.int32)
    grad = rng.standard_normal(argmax.shape).astype(np.float32)
    cpu = kernels.embedding_pool_backward(table, ids, rows, grad, layout, weights, codes, "max")
    for cache in (True, False):
        emu = kernels.embedding_pool_backward(table, ids, rows, grad, layout, weights, codes,
                                              "max", device="emulated", cache_columns=cache)
        for a, b in zip(emu[:2], cpu[:2]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(emu[2], cpu[2], rtol=1e-5, atol=1e-4, equal_nan=True)


@pytest.mark.parametrize("scan_threads", [1, 3, 5, 1024])
def test_emulated_offsets_scan(kernels, rng, scan_threads):
    # Many rows per scan thread, and more threads than rows.
    table, ids, rows, _ = _case(rng, "lengths", b=40, t=5, e=2, weighted=False)
    expected = kernels.embedding_pool_backward(table, ids, rows, np.ones((40, 1, 2)),
                                               mode="mean", mask_zero=True)
    got = kernels.embedding_pool_backward(table, ids, rows, np.ones((40, 1, 2)), mode="mean",
                                          mask_zero=True, device="emulated",
                                          scan_threads=scan_threads)
    for a, b in zip(got[:3], expected[:3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("b,t,e", [(0, 4, 3), (3, 0, 5), (4, 5, 0)])
def test_emulated_empty_shapes_match_cpu(kernels, rng, layout, mode, b, t, e):
    table, ids, rows, weights = _case(rng, layout, b=b, t=t, e=e)
    _emulated_vs_cpu(kernels, table, ids, rows, layout, mode, weights, False)


def _bad_id_case(rng, layout):
    table, ids, rows, weights = _case(rng, layout, b=6, t=5, e=33, vocab=9, weighted=True,
                                      dtype=np.float32)
    flat = ids.reshape(-1)
    flat[rng.random(flat.size) < 0.3] = 9
    flat[rng.random(flat.size) < 0.1] = -4
    return table, ids, rows, weights


def _check_bad_ids_read_zeros(kernels, device, rng, layout, mode):
    table, ids, rows, weights = _bad_id_case(rng, layout)
    pooled, argmax, grad, (values, indices, grad_weights) = _run_both(
        kernels, table, ids, rows, layout, mode, weights, False, device=device)
    expected, expected_argmax = ref.forward(table, ids, rows, layout, mode, weights,
                                            zero_bad_ids=True)
    _close(pooled, expected, np.float32)
    if mode == "max":
        np.testing.assert_array_equal(argmax, expected_argmax)
    e_values, e_indices, e_grad_weights = ref.backward(table, ids, rows, layout, mode, grad,
                                                       weights, zero_bad_ids=True)
    np.testing.assert_array_equal(indices, e_indices)  # Unchecked, as tf.gather's gradient.
    _close(values, e_values, np.float32)
    _close(grad_weights, e_grad_weights, np.float32)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_emulated_bad_ids_read_zeros(kernels, rng, layout, mode):
    _check_bad_ids_read_zeros(kernels, "emulated", rng, layout, mode)


def _invalid_splits_case(rng):
    n = 30
    flat = rng.integers(0, 8, size=n).astype(np.int64)
    table = np.round(rng.standard_normal((8, 17)) * 2)
    weights = rng.uniform(0.5, 2, size=n)
    splits = np.array([3, 7, 5, 12, 12, 40, 20])  # Not from 0, decreasing, past N.
    monotone = np.maximum.accumulate(np.clip(splits, 0, n))
    return table, flat, weights, splits, monotone


def _check_invalid_splits(kernels, device, rng, mode):
    table, flat, weights, splits, monotone = _invalid_splits_case(rng)
    pooled, argmax, grad, back = _run_both(kernels, table, flat, splits, "ragged", mode,
                                           weights, False, device=device, validate=False)
    expected, expected_argmax = ref.forward(table, flat, monotone, "ragged", mode, weights,
                                            splits_are_monotone=True)
    np.testing.assert_allclose(pooled, expected, rtol=1e-12, atol=1e-12)
    if mode == "max":
        np.testing.assert_array_equal(argmax, expected_argmax)
    e_back = ref.backward(table, flat, monotone, "ragged", mode, grad, weights,
                          splits_are_monotone=True)
    np.testing.assert_array_equal(back[1], e_back[1])
    np.testing.assert_allclose(back[0], e_back[0], rtol=1e-12, atol=1e-12)
    # Steps outside [monotone[0], monotone[-1]) belong to no row: zero.
    np.testing.assert_allclose(back[2], e_back[2], rtol=1e-12, atol=1e-12)
    assert not back[2][: monotone[0]].any() and not back[2][monotone[-1]:].any()
    with pytest.raises(ValueError, match="row_splits"):
        kernels.embedding_pool_forward(table, flat, splits, "ragged", device=device)


@pytest.mark.parametrize("mode", MODES)
def test_emulated_invalid_splits_are_made_monotone(kernels, rng, mode):
    _check_invalid_splits(kernels, "emulated", rng, mode)


# ---- GPU against the CPU (skipped without a GPU) ---------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("e", [37, 300])
def test_gpu_matches_cpu(gpu_kernels, rng, layout, mode, dtype, e):
    table, ids, rows, weights = _case(rng, layout, b=20, e=e, dtype=_dtype(dtype),
                                      integers=mode == "max", id_dtype=np.int32)
    for mask_zero in (False, True):
        for weights_in in (weights, None):
            cpu = _run_both(gpu_kernels, table, ids, rows, layout, mode, weights_in, mask_zero)
            gpu = _run_both(gpu_kernels, table, ids, rows, layout, mode, weights_in, mask_zero,
                            device="gpu")
            _exact(gpu[0], cpu[0])  # The CPU's order, no FMA.
            _exact(gpu[1], cpu[1])
            for a, b in zip(gpu[3][:2], cpu[3][:2]):
                _exact(a, b)
            _close(gpu[3][2], np.asarray(cpu[3][2], np.float64), table.dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gpu_max_ties_nan_wide_rows_match_cpu(gpu_kernels, rng, layout):
    # E = 6000 float32 columns do not fit the column cache: recomputed.
    for e in (300, 6000):
        table, ids, rows, weights = _case(rng, layout, b=5, e=e, integers=True,
                                          dtype=np.float32)
        table[3, :40] = np.nan
        table[4, 20:80] = -np.inf
        cpu = _run_both(gpu_kernels, table, ids, rows, layout, "max", weights, False)
        gpu = _run_both(gpu_kernels, table, ids, rows, layout, "max", weights, False,
                        device="gpu")
        np.testing.assert_array_equal(gpu[0], cpu[0])
        np.testing.assert_array_equal(gpu[1], cpu[1])
        for a, b in zip(gpu[3][:2], cpu[3][:2]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(gpu[3][2], cpu[3][2], rtol=1e-5, atol=1e-4, equal_nan=True)


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("b,t,e", [(0, 4, 3), (3, 0, 5), (4, 5, 0)])
def test_gpu_empty_shapes_match_cpu(gpu_kernels, rng, layout, mode, b, t, e):
    table, ids, rows, weights = _case(rng, layout, b=b, t=t, e=e)
    cpu = _run_both(gpu_kernels, table, ids, rows, layout, mode, weights, False)
    gpu = _run_both(gpu_kernels, table, ids, rows, layout, mode, weights, False, device="gpu")
    for a, b_ in zip(gpu[:2] + gpu[3], cpu[:2] + cpu[3]):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.gpu
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_gpu_bad_ids_read_zeros(gpu_kernels, rng, layout, mode):
    _check_bad_ids_read_zeros(gpu_kernels, "gpu", rng, layout, mode)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
def test_gpu_invalid_splits_are_made_monotone(gpu_kernels, rng, mode):
    _check_invalid_splits(gpu_kernels, "gpu", rng, mode)
