"""The TF-free attention-softmax kernels through the pybind11 module: CPU against
the float64 NumPy reference, GPU against the CPU (skipped without a GPU)."""

from __future__ import annotations

import attention_reference as ref
import numpy as np
import pytest

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-15)}
GRAD_TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
# heads, batch, Tq, Tk: Tk multiples of 8 (the AVX main loop), ragged tails, 1,
# more than a warp, and empty shapes.
SHAPES = [(2, 3, 5, 5), (3, 4, 17, 17), (1, 2, 9, 21), (2, 2, 3, 8), (2, 3, 4, 16),
          (2, 3, 4, 1), (1, 2, 6, 45), (4, 1, 50, 50), (2, 0, 4, 4), (2, 3, 0, 4),
          (2, 3, 4, 0)]


def _case(rng, heads, batch, tq, tk, dtype, scale=3.0):
    scores = (rng.standard_normal((heads * batch, tq, tk)) * scale).astype(dtype)
    key_valid = rng.random((batch, tk)) < 0.6
    if batch > 1 and tk > 0:
        key_valid[0] = False  # no eligible key at all: a uniform row
        key_valid[1] = False
        key_valid[1, 0] = True  # with blinding, query 0 has no eligible key
    return scores, key_valid


def _divisor32(divisor):
    return float(np.float32(divisor))  # what the kernels see


@pytest.mark.parametrize("heads,batch,tq,tk", SHAPES)
@pytest.mark.parametrize("blinding", [False, True])
@pytest.mark.parametrize("divisor", [1.0, 2.828427])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_matches_reference(kernels, rng, heads, batch, tq, tk, blinding, divisor, dtype):
    scores, key_valid = _case(rng, heads, batch, tq, tk, dtype)
    probs, ms = kernels.attention_softmax(scores, key_valid, divisor, blinding, threads=3)
    assert probs.dtype == dtype and probs.shape == scores.shape and ms == 0.0
    d = _divisor32(divisor)
    np.testing.assert_allclose(probs, ref.forward(scores, key_valid, d, blinding), **TOL[dtype])

    grad = rng.standard_normal(scores.shape).astype(dtype)
    dscores, _ = kernels.attention_softmax(scores, key_valid, divisor, blinding, grad=grad,
                                           probs=probs, threads=3)
    assert dscores.dtype == dtype and dscores.shape == scores.shape
    np.testing.assert_allclose(dscores, ref.backward(grad, probs, key_valid, d, blinding),
                               **GRAD_TOL[dtype])
    masked = ~ref.eligible(key_valid, scores.shape[0], tq, blinding)
    assert np.all(dscores[masked] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("blinding", [False, True])
def test_rows_without_eligible_keys_are_uniform(kernels, rng, dtype, blinding):
    scores, key_valid = _case(rng, 2, 3, 7, 11, dtype)
    probs, _ = kernels.attention_softmax(scores, key_valid, blinding=blinding)
    uniform = np.full((7, 11), 1.0 / 11)
    np.testing.assert_allclose(probs[0], uniform, **TOL[dtype])  # sample 0, head 0
    np.testing.assert_allclose(probs[3], uniform, **TOL[dtype])  # sample 0, head 1
    if blinding:
        np.testing.assert_allclose(probs[1, 0], uniform[0], **TOL[dtype])
    else:
        np.testing.assert_array_equal(probs[1, :, 0], 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float64_keeps_the_exact_padding_logit(kernels, dtype):
    # Only key 0 is valid, and its logit is -2**32 + 1 + 1: in float64 the
    # padded keys (-2**32 + 1) are exactly e^-1 as likely; in float32 the two
    # logits round to the same value, so the row is uniform.
    scores = np.array([[[ref.NEG + 1, 0.0, 0.0]]], dtype)
    key_valid = np.array([[True, False, False]])
    probs, _ = kernels.attention_softmax(scores, key_valid)
    if dtype == np.float64:
        e = np.exp(-1.0)
        np.testing.assert_allclose(probs[0, 0], [1, e, e] / (1 + 2 * e), rtol=1e-12)
    else:
        np.testing.assert_array_equal(probs[0, 0], np.float32(1.0 / 3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_do_not_change_results(kernels, rng, dtype):
    scores, key_valid = _case(rng, 4, 9, 23, 37, dtype)
    grad = rng.standard_normal(scores.shape).astype(dtype)
    for kwargs in ({}, {"grad": grad}):
        single, _ = kernels.attention_softmax(scores, key_valid, 1.7, True, threads=1, **kwargs)
        many, _ = kernels.attention_softmax(scores, key_valid, 1.7, True, threads=7, **kwargs)
        np.testing.assert_array_equal(single, many)


def test_backward_probs_default_to_the_forward(kernels, rng):
    scores, key_valid = _case(rng, 2, 3, 5, 9, np.float64)
    grad = rng.standard_normal(scores.shape)
    probs, _ = kernels.attention_softmax(scores, key_valid, 2.0, True)
    given, _ = kernels.attention_softmax(scores, key_valid, 2.0, True, grad=grad, probs=probs)
    default, _ = kernels.attention_softmax(scores, key_valid, 2.0, True, grad=grad)
    np.testing.assert_array_equal(given, default)


def test_non_contiguous_inputs_are_copied(kernels, rng):
    scores, key_valid = _case(rng, 2, 3, 6, 6, np.float64)
    transposed = np.ascontiguousarray(scores.transpose(0, 2, 1)).transpose(0, 2, 1)
    assert not transposed.flags.c_contiguous
    np.testing.assert_array_equal(kernels.attention_softmax(transposed, key_valid.T.copy().T)[0],
                                  kernels.attention_softmax(scores, key_valid)[0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(scores=np.zeros((3, 4)), key_valid=np.ones((3, 4), bool)), "scores"),
    (dict(scores=np.zeros((2, 3, 4), np.float16), key_valid=np.ones((2, 4), bool)), "scores"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 4), np.int32)), "key_valid"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 5), bool)), "key_valid"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((4,), bool)), "key_valid"),
    (dict(scores=np.zeros((5, 3, 4)), key_valid=np.ones((2, 4), bool)), "key_valid.shape"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 4), bool), divisor=0.0), "divisor"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 4), bool), divisor=np.inf),
     "divisor"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 4), bool),
          grad=np.zeros((2, 3, 5))), "grad"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 4), bool),
          grad=np.zeros((2, 3, 4), np.float32)), "grad"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 4), bool),
          grad=np.zeros((2, 3, 4)), probs=np.zeros((1, 3, 4))), "probs"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 4), bool),
          probs=np.zeros((2, 3, 4))), "probs"),
    (dict(scores=np.zeros((2, 3, 4)), key_valid=np.ones((2, 4), bool), device="tpu"), "device"),
])
def test_bad_arguments_raise_value_errors(kernels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kernels.attention_softmax(**kwargs)


@pytest.mark.gpu
@pytest.mark.parametrize("heads,batch,tq,tk", SHAPES + [(8, 64, 50, 50), (2, 5, 3, 200)])
@pytest.mark.parametrize("blinding", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_matches_cpu(gpu_kernels, rng, heads, batch, tq, tk, blinding, dtype):
    scores, key_valid = _case(rng, heads, batch, tq, tk, dtype)
    cpu, _ = gpu_kernels.attention_softmax(scores, key_valid, 2.828427, blinding)
    gpu, ms = gpu_kernels.attention_softmax(scores, key_valid, 2.828427, blinding,
                                            device="gpu", repeats=2)
    assert gpu.dtype == dtype and ms >= 0.0
    np.testing.assert_allclose(gpu, cpu, **TOL[dtype])

    grad = rng.standard_normal(scores.shape).astype(dtype)
    cpu_grad, _ = gpu_kernels.attention_softmax(scores, key_valid, 2.828427, blinding,
                                                grad=grad, probs=cpu)
    gpu_grad, _ = gpu_kernels.attention_softmax(scores, key_valid, 2.828427, blinding,
                                                grad=grad, probs=cpu, device="gpu")
    np.testing.assert_allclose(gpu_grad, cpu_grad, **GRAD_TOL[dtype])
    masked = ~ref.eligible(key_valid, scores.shape[0], tq, blinding)
    assert np.all(gpu_grad[masked] == 0)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_matches_reference(gpu_kernels, rng, dtype):
    scores, key_valid = _case(rng, 3, 4, 17, 33, dtype)
    probs, _ = gpu_kernels.attention_softmax(scores, key_valid, 2.0, True, device="gpu")
    np.testing.assert_allclose(probs, ref.forward(scores, key_valid, 2.0, True), **TOL[dtype])


def test_gpu_without_cuda_build_raises(kernels):
    if kernels.cuda_built:
        pytest.skip("the kernel module was built with CUDA")
    with pytest.raises(ValueError, match="CUDA"):
        kernels.attention_softmax(np.zeros((1, 1, 1)), np.ones((1, 1), bool), device="gpu")
