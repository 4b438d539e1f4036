"""The TF-free DIN attention-pooling kernels through the pybind11 module: CPU
against the float64 NumPy statement of DeepCTR's graph (which builds the
[B,T,4E] input the kernels fold away), GPU against the CPU (skipped without a
GPU)."""

from __future__ import annotations

import attention_pool_reference as ref
import numpy as np
import pytest
from cpu_isa_builds import cpu_isa_fixture

ACTIVATIONS = ["sigmoid", "relu", "tanh", "linear"]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


isa = cpu_isa_fixture("attention_pool")  # Each CPU build this CPU can run.


def _case(rng, b, t, e, units, dtype, layout="lengths", index=np.int64):
    query = rng.standard_normal((b, 1, e)).astype(dtype)
    keys = rng.standard_normal((b, t, e)).astype(dtype)
    if layout == "mask":
        rows = rng.random((b, t)) < 0.5
        rows[:1] = False  # a row without a valid step
    else:
        rows = rng.integers(0, t + 1, size=b).astype(index)
        rows[: min(b, 4)] = np.array([0, 1, t, t + 3])[: min(b, 4)]
        if b > 4:
            rows[4] = -2
    dims = [4 * e, *units, 1]
    kernels = [(rng.standard_normal((dims[i], dims[i + 1])) / np.sqrt(dims[i])).astype(dtype)
               for i in range(len(dims) - 1)]
    biases = [(rng.standard_normal(dims[i + 1]) * 0.1).astype(dtype)
              for i in range(len(dims) - 1)]
    return query, keys, rows, kernels, biases


def _check(kernels_module, rng, b, t, e, units, activation, normalize, return_score, dtype,
           layout, index=np.int64, threads=3):
    q, k, rows, ws, bs = _case(rng, b, t, e, units, dtype, layout, index)
    kw = dict(activation=activation, weight_normalization=normalize, return_score=return_score)
    out, ms = kernels_module.attention_pool(q, k, rows, ws, bs, threads=threads, **kw)
    assert out.dtype == dtype and ms == 0.0
    expected = ref.forward(q, k, rows, ws, bs, activation, normalize, return_score)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    grad = rng.standard_normal(out.shape).astype(dtype)
    gq, gk, gws, gbs, _ = kernels_module.attention_pool(q, k, rows, ws, bs, grad=grad,
                                                        threads=threads, **kw)
    eq, ek, ews, ebs = ref.backward(q, k, rows, ws, bs, grad, activation, normalize, return_score)
    np.testing.assert_allclose(gq, eq, **TOL[dtype])
    np.testing.assert_allclose(gk, ek, **TOL[dtype])
    for got, want in zip(gws + gbs, ews + ebs):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, **TOL[dtype])
    # The backward from the forward's saved activations is the recomputing one, bit for bit.
    same, _, saved = kernels_module.attention_pool(q, k, rows, ws, bs, threads=threads,
                                                   return_activations=True, **kw)
    np.testing.assert_array_equal(same, out)
    from_saved = kernels_module.attention_pool(q, k, rows, ws, bs, grad=grad, activations=saved,
                                               threads=threads, **kw)
    for a, b in zip((gq, gk, *gws, *gbs), (*from_saved[:2], *from_saved[2], *from_saved[3])):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("units", [(80, 40), (5,), (), (3, 17, 9)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("normalize,return_score", [(False, False), (True, False),
                                                    (False, True), (True, True)])
def test_cpu_float64_matches_reference(kernels, isa, rng, units, activation, normalize,
                                       return_score):
    _check(kernels, rng, 9, 7, 5, units, activation, normalize, return_score, np.float64,
           "lengths")


@pytest.mark.parametrize("layout,index", [("mask", np.int64), ("lengths", np.int32)])
@pytest.mark.parametrize("normalize,return_score", [(False, False), (True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_layouts_and_dtypes_match_reference(kernels, isa, rng, layout, index, normalize,
                                                return_score, dtype):
    # E = 19 and 33 units: padded vector tails; T = 21 > one register block of rows.
    _check(kernels, rng, 6, 21, 19, (33, 8), "sigmoid", normalize, return_score, dtype, layout,
           index)


@pytest.mark.parametrize("units", [(112, 5), (48, 96, 16)])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_register_blocks_and_their_edges_match_reference(kernels, isa, rng, units, activation,
                                                         dtype):
    # Up to 29 valid steps: every row-block height and its shorter tails; 1 to 14
    # vectors of columns: every column-block width, and matrices cut into several.
    _check(kernels, rng, 40, 29, 19, units, activation, False, False, dtype, "lengths")


@pytest.mark.parametrize("normalize,return_score", [(False, False), (True, False),
                                                    (True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keys_of_whole_vectors_are_read_in_place(kernels, rng, normalize, return_score, dtype):
    # E = 16 fills whole vectors in both dtypes: prefix rows are used in place.
    _check(kernels, rng, 9, 13, 16, (24, 16), "sigmoid", normalize, return_score, dtype,
           "lengths")


def test_empty_rows_are_zero_or_the_mean_of_all_keys(kernels, rng):
    q, k, _, ws, bs = _case(rng, 3, 5, 4, (6,), np.float64)
    lengths = np.array([0, 0, -1], np.int64)
    plain, _ = kernels.attention_pool(q, k, lengths, ws, bs)
    np.testing.assert_array_equal(plain, 0.0)
    normalized, _ = kernels.attention_pool(q, k, lengths, ws, bs, weight_normalization=True)
    np.testing.assert_allclose(normalized[:, 0], k.mean(axis=1), rtol=1e-12)
    scores, _ = kernels.attention_pool(q, k, lengths, ws, bs, weight_normalization=True,
                                       return_score=True)
    np.testing.assert_allclose(scores, 1 / 5, rtol=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_padding_is_never_read_in_rows_with_a_valid_step(kernels, rng, normalize):
    q, k, _, ws, bs = _case(rng, 4, 6, 3, (4,), np.float32)
    lengths = np.array([2, 6, 1, 3], np.int64)
    poisoned = k.copy()
    for b, n in enumerate(lengths):
        poisoned[b, n:] = np.nan
    kw = dict(weight_normalization=normalize)
    clean, _ = kernels.attention_pool(q, k, lengths, ws, bs, **kw)
    dirty, _ = kernels.attention_pool(q, poisoned, lengths, ws, bs, **kw)
    np.testing.assert_array_equal(dirty, clean)
    grad = rng.standard_normal(clean.shape).astype(np.float32)
    clean_grads = kernels.attention_pool(q, k, lengths, ws, bs, grad=grad, **kw)
    dirty_grads = kernels.attention_pool(q, poisoned, lengths, ws, bs, grad=grad, **kw)
    for a, b in zip(clean_grads[:2], dirty_grads[:2]):
        np.testing.assert_array_equal(b, a)
    for a, b in zip(clean_grads[2] + clean_grads[3], dirty_grads[2] + dirty_grads[3]):
        np.testing.assert_array_equal(b, a)


def test_nan_in_a_valid_key_reaches_only_its_row(kernels, rng):
    q, k, _, ws, bs = _case(rng, 3, 4, 3, (5,), np.float32)
    lengths = np.array([4, 2, 3], np.int64)
    k[1, 0, 2] = np.nan
    out, _ = kernels.attention_pool(q, k, lengths, ws, bs, weight_normalization=True)
    assert np.isnan(out[1]).all()
    assert np.isfinite(out[[0, 2]]).all()


@pytest.mark.parametrize("normalize", [False, True])
def test_threads_do_not_change_results(kernels, rng, normalize):
    q, k, rows, ws, bs = _case(rng, 70, 9, 6, (12, 5), np.float32)
    kw = dict(weight_normalization=normalize)
    grad = rng.standard_normal((70, 1, 6)).astype(np.float32)
    one = kernels.attention_pool(q, k, rows, ws, bs, grad=grad, threads=1, **kw)
    many = kernels.attention_pool(q, k, rows, ws, bs, grad=grad, threads=5, **kw)
    for a, b in zip(one[:2] + tuple(one[2]) + tuple(one[3]),
                    many[:2] + tuple(many[2]) + tuple(many[3])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("b,t,e", [(0, 4, 3), (3, 0, 5), (2, 3, 0)])
def test_empty_shapes(kernels, rng, b, t, e):
    q, k, rows, ws, bs = _case(rng, b, t, e, (4,), np.float64)
    for return_score in (False, True):
        out, _ = kernels.attention_pool(q, k, rows, ws, bs, return_score=return_score,
                                        weight_normalization=True)
        np.testing.assert_allclose(out, ref.forward(q, k, rows, ws, bs, "sigmoid", True,
                                                    return_score), rtol=1e-12)
        grad = np.ones(out.shape)
        gq, gk, gws, _, _ = kernels.attention_pool(q, k, rows, ws, bs, grad=grad,
                                                   return_score=return_score,
                                                   weight_normalization=True)
        eq, ek, ews, _ = ref.backward(q, k, rows, ws, bs, grad, "sigmoid", True, return_score)
        np.testing.assert_allclose(gq, eq, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gk, ek, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gws[0], ews[0], rtol=1e-12, atol=1e-14)


def _args(rng, **changes):
    q, k, rows, ws, bs = _case(rng, 2, 3, 4, (5,), np.float32)
    args = dict(query=q, keys=k, rows=rows, kernels=ws, biases=bs)
    args.update(changes)
    return args


@pytest.mark.parametrize("change,message", [
    (lambda a: dict(query=a["query"][:, :, :3]), "query"),
    (lambda a: dict(query=np.concatenate([a["query"]] * 2, axis=1)), "query"),
    (lambda a: dict(keys=a["keys"][0]), "keys"),
    (lambda a: dict(keys=a["keys"].astype(np.float16)), "keys"),
    (lambda a: dict(rows=np.ones((2, 4), bool)), "mask"),
    (lambda a: dict(rows=np.ones(3, np.int64)), "lengths"),
    (lambda a: dict(rows=np.ones(2, np.float32)), "rows"),
    (lambda a: dict(kernels=[a["kernels"][0][:-1], a["kernels"][1]]), "kernel0"),
    (lambda a: dict(kernels=[a["kernels"][0], a["kernels"][1][:-1]]), "kernel1"),
    (lambda a: dict(biases=[a["biases"][0][:-1], a["biases"][1]]), "bias0"),
    (lambda a: dict(biases=a["biases"][:1]), "kernels and biases"),
    (lambda a: dict(activation="dice"), "activation"),
    (lambda a: dict(device="tpu"), "device"),
    (lambda a: dict(grad=np.zeros((2, 1, 5), np.float32)), "grad"),
    (lambda a: dict(grad=np.zeros((2, 1, 4), np.float32), activations=np.zeros(3, np.float32)),
     "activations"),
    (lambda a: dict(activations=np.zeros(3, np.float32)), "activations"),
])
def test_bad_arguments_raise_value_errors(kernels, rng, change, message):
    args = _args(rng)
    args.update(change(args))
    with pytest.raises(ValueError, match=message):
        kernels.attention_pool(**args)


def test_gpu_without_cuda_build_raises(kernels, rng):
    if kernels.cuda_built:
        pytest.skip("the kernel module was built with CUDA")
    with pytest.raises(ValueError, match="CUDA"):
        kernels.attention_pool(**_args(rng), device="gpu")


@pytest.mark.gpu
@pytest.mark.parametrize("units", [(80, 40), (64, 16), (), (7,)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("normalize,return_score", [(False, False), (True, False),
                                                    (False, True), (True, True)])
@pytest.mark.parametrize("layout", ["lengths", "mask"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_matches_cpu(gpu_kernels, rng, units, activation, normalize, return_score, layout,
                         dtype):
    q, k, rows, ws, bs = _case(rng, 37, 45, 12, units, dtype, layout)
    kw = dict(activation=activation, weight_normalization=normalize, return_score=return_score)
    cpu, _ = gpu_kernels.attention_pool(q, k, rows, ws, bs, **kw)
    gpu, ms = gpu_kernels.attention_pool(q, k, rows, ws, bs, device="gpu", repeats=2, **kw)
    assert gpu.dtype == dtype and ms >= 0.0
    np.testing.assert_allclose(gpu, cpu, **TOL[dtype])
    grad = rng.standard_normal(cpu.shape).astype(dtype)
    cpu_grads = gpu_kernels.attention_pool(q, k, rows, ws, bs, grad=grad, **kw)
    gpu_grads = gpu_kernels.attention_pool(q, k, rows, ws, bs, grad=grad, device="gpu", **kw)
    for a, b in zip(cpu_grads[:2] + tuple(cpu_grads[2]) + tuple(cpu_grads[3]),
                    gpu_grads[:2] + tuple(gpu_grads[2]) + tuple(gpu_grads[3])):
        # A weight gradient sums B*T terms in another order on each device (GPU
        # atomics, CPU shards): in float32 an element that cancels down to a
        # small value keeps an absolute error of a few ulps of the array's scale
        # (seen on an H200: 1.8e-4 in a (40, 1) gradient whose entries reach 245).
        tol = dict(TOL[dtype])
        if dtype == np.float32:
            tol["atol"] += 4e-6 * float(np.abs(a).max(initial=0.0))
        np.testing.assert_allclose(b, a, **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("b,t,e", [(0, 4, 3), (3, 0, 5), (2, 3, 0), (5, 300, 70)])
def test_gpu_edge_shapes_match_cpu(gpu_kernels, rng, b, t, e):
    q, k, rows, ws, bs = _case(rng, b, t, e, (9, 4), np.float64)
    for normalize in (False, True):
        cpu, _ = gpu_kernels.attention_pool(q, k, rows, ws, bs, weight_normalization=normalize)
        gpu, _ = gpu_kernels.attention_pool(q, k, rows, ws, bs, weight_normalization=normalize,
                                            device="gpu")
        np.testing.assert_allclose(gpu, cpu, **TOL[np.float64])
        grad = np.ones(cpu.shape)
        cpu_grads = gpu_kernels.attention_pool(q, k, rows, ws, bs, grad=grad,
                                               weight_normalization=normalize)
        gpu_grads = gpu_kernels.attention_pool(q, k, rows, ws, bs, grad=grad, device="gpu",
                                               weight_normalization=normalize)
        for a, b_ in zip(cpu_grads[:2] + tuple(cpu_grads[2]), gpu_grads[:2] + tuple(gpu_grads[2])):
            np.testing.assert_allclose(b_, a, **TOL[np.float64])
