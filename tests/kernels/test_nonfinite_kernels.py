"""NaN, ±Inf, -0 and huge values through the kernel module: the CPU kernels
against the float64 NumPy references, the GPU against the CPU (skipped without
a GPU). The rules (sequence_pool.h, attention_softmax.h): a NaN in a valid step
makes max NaN, with a NaN gradient at every competing step; padded steps are
never read, so nothing in them leaks into a row that has a valid step; a NaN
or +inf eligible logit makes its softmax row NaN, whatever its position (AVX
lane or scalar tail); an ineligible logit is never read."""

from __future__ import annotations

import attention_reference
import numpy as np
import pytest
from pool_reference import pool, random_rows

MODES = ["sum", "mean", "max"]
LAYOUTS = ["lengths", "mask", "ragged"]
SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 1e30, -1e30])


def _nonfinite_case(rng, layout, dtype, where):
    """values with specials in the valid steps, the padded steps, or both."""
    b, t, e = 9, 7, 19
    rows, valid = random_rows(rng, layout, b, t, np.int64)
    dense = rng.standard_normal((b, t, e))
    pick = rng.random(dense.shape) < 0.15
    region = {"valid": valid[:, :, None], "padded": ~valid[:, :, None], "both": True}[where]
    pick &= np.broadcast_to(region, pick.shape)
    dense[pick] = rng.choice(SPECIALS, size=int(pick.sum()))
    dense = dense.astype(dtype)
    divisor = rows.astype(np.float64) if layout == "lengths" else valid.sum(1).astype(np.float64)
    values = dense[valid] if layout == "ragged" else dense
    return values, rows, valid, divisor, dense


def _assert_nan_aware(actual, expected, tol):
    actual = np.asarray(actual, np.float64)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("where", ["valid", "padded", "both"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_pooling_nonfinite_matches_reference(kernels, rng, where, layout, mode, dtype):
    values, rows, valid, divisor, dense = _nonfinite_case(rng, layout, dtype, where)
    expected, expected_grad = pool(dense, valid, divisor, mode, padded=layout != "ragged")
    if where != "valid":
        # Padded specials never reach a row with a valid step: the same result
        # as with zeros in the padding.
        clean = np.where(valid[:, :, None], dense, 0).astype(dtype)
        clean_expected, _ = pool(clean, valid, divisor, mode, padded=layout != "ragged")
        has_valid = valid.any(axis=1)
        np.testing.assert_array_equal(expected[has_valid], clean_expected[has_valid])
    out, _ = kernels.sequence_pool(values, rows, mode, layout, threads=3)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    _assert_nan_aware(out, expected, tol)
    ones = np.ones(out.shape, dtype)
    grad, _ = kernels.sequence_pool(values, rows, mode, layout, grad=ones, threads=3)
    if layout == "ragged":
        expected_grad = expected_grad[valid]
    _assert_nan_aware(grad, expected_grad, tol)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_max_nan_at_every_position_is_nan(kernels, layout, dtype):
    # Every step of a full row and every column block: NaN wins wherever it is
    # (first, middle, last step; any vector lane).
    t, e = 6, 37
    for step in range(t):
        dense = np.arange(t * e, dtype=dtype).reshape(1, t, e)
        dense[0, step, ::3] = np.nan
        valid = np.ones((1, t), bool)
        rows = {"lengths": np.array([t]), "mask": valid, "ragged": np.array([0, t])}[layout]
        values = dense[0] if layout == "ragged" else dense
        out, _ = kernels.sequence_pool(values, rows, "max", layout)
        np.testing.assert_array_equal(np.isnan(out[0, 0]), np.arange(e) % 3 == 0)


@pytest.mark.gpu
@pytest.mark.parametrize("where", ["valid", "padded", "both"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_gpu_pooling_nonfinite_matches_cpu(gpu_kernels, rng, where, layout, mode):
    values, rows, _, _, _ = _nonfinite_case(rng, layout, np.float32, where)
    cpu, _, argmax = gpu_kernels.sequence_pool(values, rows, mode, layout, return_argmax=True)
    gpu, _, gpu_argmax = gpu_kernels.sequence_pool(values, rows, mode, layout, device="gpu",
                                                   return_argmax=True)
    _assert_nan_aware(gpu, cpu.astype(np.float64), 1e-6)
    np.testing.assert_array_equal(gpu_argmax, argmax)
    upstream = rng.standard_normal(cpu.shape).astype(np.float32)
    extra = {"argmax": argmax} if mode == "max" else {}
    cpu_grad, _ = gpu_kernels.sequence_pool(values, rows, mode, layout, grad=upstream, **extra)
    gpu_grad, _ = gpu_kernels.sequence_pool(values, rows, mode, layout, grad=upstream,
                                            device="gpu", **extra)
    _assert_nan_aware(gpu_grad, cpu_grad.astype(np.float64), 1e-6)


def _attention_case(rng, dtype, tk=19):
    heads, batch, tq = 2, 3, 4
    scores = rng.standard_normal((heads * batch, tq, tk)).astype(dtype)
    key_valid = rng.random((batch, tk)) < 0.7
    key_valid[:, 0] = True
    return scores, key_valid


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("special", [np.nan, np.inf])
def test_cpu_attention_nonfinite_logit_makes_row_nan_at_every_lane(kernels, rng, dtype,
                                                                   special):
    # tk = 19: keys 0..15 take the AVX path, 16..18 the scalar tail.
    scores, key_valid = _attention_case(rng, dtype)
    key_valid[:] = True
    for k in range(scores.shape[2]):
        s = scores.copy()
        s[1, 2, k] = special
        probs, _ = kernels.attention_softmax(s, key_valid, 2.0, False, heads=2)
        nan_rows = np.isnan(probs).any(axis=-1)
        expected_rows = np.zeros(nan_rows.shape, bool)
        expected_rows[1, 2] = True
        np.testing.assert_array_equal(nan_rows, expected_rows, err_msg=f"key {k}")
        assert np.isnan(probs[1, 2]).all(), f"key {k}: the whole row is NaN"
        expected = attention_reference.forward(s, key_valid, 2.0)
        _assert_nan_aware(probs, expected, 1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_attention_ineligible_specials_never_read(kernels, rng, dtype):
    scores, key_valid = _attention_case(rng, dtype)
    dirty = scores.copy()
    ineligible = ~attention_reference.eligible(key_valid, scores.shape[0], scores.shape[1], True)
    dirty[ineligible] = rng.choice(SPECIALS[:3], size=int(ineligible.sum()))
    clean, _ = kernels.attention_softmax(scores, key_valid, 1.5, True, heads=2)
    probs, _ = kernels.attention_softmax(dirty, key_valid, 1.5, True, heads=2)
    np.testing.assert_array_equal(probs, clean)
    upstream = rng.standard_normal(scores.shape).astype(dtype)
    grad, _ = kernels.attention_softmax(dirty, key_valid, 1.5, True, grad=upstream, heads=2)
    assert np.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_attention_minus_inf_logits(kernels, rng, dtype):
    # -inf eligible logits get 0; a row whose eligible logits are all -inf is
    # NaN without padding (-inf - -inf) and uniform over the padding with it.
    scores, key_valid = _attention_case(rng, dtype)
    scores[0, 0, :5] = -np.inf
    scores[3, 1, :] = -np.inf
    probs, _ = kernels.attention_softmax(scores, key_valid, 1.0, False, heads=2)
    _assert_nan_aware(probs, attention_reference.forward(scores, key_valid, 1.0),
                      1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_attention_nonfinite_matches_cpu(gpu_kernels, rng, dtype):
    scores, key_valid = _attention_case(rng, dtype, tk=37)
    pick = rng.random(scores.shape) < 0.05
    scores[pick] = rng.choice(SPECIALS, size=int(pick.sum()))
    cpu, _ = gpu_kernels.attention_softmax(scores, key_valid, 2.0, True, heads=2)
    gpu, _ = gpu_kernels.attention_softmax(scores, key_valid, 2.0, True, heads=2, device="gpu")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    _assert_nan_aware(gpu, cpu.astype(np.float64), tol)
    upstream = rng.standard_normal(scores.shape).astype(dtype)
    cpu_grad, _ = gpu_kernels.attention_softmax(scores, key_valid, 2.0, True, grad=upstream,
                                                probs=cpu, heads=2)
    gpu_grad, _ = gpu_kernels.attention_softmax(scores, key_valid, 2.0, True, grad=upstream,
                                                probs=cpu, heads=2, device="gpu")
    _assert_nan_aware(gpu_grad, cpu_grad.astype(np.float64), tol)


def test_attention_heads_must_match_rows(kernels, rng):
    scores, key_valid = _attention_case(rng, np.float32)
    with pytest.raises(ValueError, match=r"scores.shape\[0\] \(6\) must be heads \(3\)"):
        kernels.attention_softmax(scores, key_valid, heads=3)
    probs, _ = kernels.attention_softmax(scores, key_valid, heads=2)
    legacy, _ = kernels.attention_softmax(scores, key_valid)  # heads 0: any multiple.
    np.testing.assert_array_equal(probs, legacy)


def test_equal_but_distinct_dtype_objects_are_accepted(kernels, rng):
    values = rng.standard_normal((2, 3, 4)).astype(np.float32)
    other = np.dtype("float32").newbyteorder("=")
    upstream = np.ones((2, 1, 4), other)
    grad, _ = kernels.sequence_pool(values, np.array([1, 3]), "sum", grad=upstream)
    np.testing.assert_array_equal(grad[0, 0], np.ones(4))
    scores, key_valid = _attention_case(rng, np.float32)
    probs, _ = kernels.attention_softmax(scores, key_valid)
    dprobs, _ = kernels.attention_softmax(scores, key_valid, grad=probs.astype(other),
                                          probs=probs.astype(other))
    assert dprobs.shape == scores.shape
