"""The TF-free dynamic-GRU kernels through the pybind11 module: the CPU forward
against the float64 NumPy reference, the CPU backward against central finite
differences of that reference, and the GPU against the CPU (skipped without a
GPU)."""

from __future__ import annotations

import gru_reference as ref
import numpy as np
import pytest
from cpu_isa_builds import cpu_isa_fixture

CELLS = ["GRU", "AGRU", "AUGRU"]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
# B, T, E, U: several 32-row chunks with ragged tails, U not a multiple of the
# SIMD width, E = 1, empty shapes, and 2U = 112 = 64 + 32 + 16 columns (each
# float32 GEMM block width of small_gemm.h, U = 56 with an edge).
SHAPES = [(70, 6, 5, 7), (9, 11, 3, 16), (5, 4, 1, 3), (3, 1, 2, 2), (0, 4, 3, 2),
          (4, 0, 3, 2), (4, 3, 0, 5), (37, 5, 9, 56)]


isa = cpu_isa_fixture("dynamic_gru")  # Each CPU build this CPU can run.


def _weights(w):
    return [w["wg"], w["bg"], w["wc"], w["bc"]]


def _run(kernels, x, lengths, w, att, cell, reverse, **kwargs):
    return kernels.dynamic_gru(x, lengths, *_weights(w), att=att, cell=cell, reverse=reverse,
                               **kwargs)


@pytest.mark.parametrize("b,t,e,u", SHAPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_forward_matches_reference(kernels, isa, rng, b, t, e, u, cell, reverse, dtype):
    x, lengths, w, att = ref.random_case(rng, b, t, e, u, cell, dtype)
    outputs, final, gates, ms = _run(kernels, x, lengths, w, att, cell, reverse, threads=3)
    assert outputs.dtype == dtype and outputs.shape == (b, t, u) and ms == 0.0
    assert final.shape == (b, u) and gates.shape == (b, t, 3 * u)
    want_out, want_final = ref.forward(x, lengths, **w, att=att, cell=cell, reverse=reverse)
    np.testing.assert_allclose(outputs, want_out, **TOL[dtype])
    np.testing.assert_allclose(final, want_final, **TOL[dtype])
    valid = np.arange(t)[None, :] < ref.clamp_lengths(lengths, t)[:, None]
    assert np.all(outputs[~valid] == 0) and np.all(gates[~valid] == 0)


def _loss_grads_fd(x, lengths, w, att, cell, reverse, go, gf, eps=1e-6):
    """Central differences of sum(outputs * go) + sum(final * gf)."""
    params = {"x": x, **w}
    if att is not None:
        params["att"] = att

    def loss():
        out, fin = ref.forward(params["x"], lengths, params["wg"], params["bg"], params["wc"],
                               params["bc"], att=params.get("att"), cell=cell, reverse=reverse)
        return np.sum(out * go) + np.sum(fin * gf)

    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            keep = value[idx]
            value[idx] = keep + eps
            up = loss()
            value[idx] = keep - eps
            down = loss()
            value[idx] = keep
            g[idx] = (up - down) / (2 * eps)
        grads[name] = g
    return grads


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_cpu_backward_matches_finite_differences(kernels, isa, rng, cell, reverse):
    x, lengths, w, att = ref.random_case(rng, 5, 4, 3, 4, cell)
    go = rng.standard_normal((5, 4, 4))
    gf = rng.standard_normal((5, 4))
    gx, gatt, gwg, gbg, gwc, gbc, _ = _run(kernels, x, lengths, w, att, cell, reverse,
                                           grad_outputs=go, grad_final=gf, threads=2)
    want = _loss_grads_fd(x, lengths, w, att, cell, reverse, go, gf)
    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gx, want["x"], **tol)
    np.testing.assert_allclose(gwg, want["wg"], **tol)
    np.testing.assert_allclose(gbg, want["bg"], **tol)
    np.testing.assert_allclose(gwc, want["wc"], **tol)
    np.testing.assert_allclose(gbc, want["bc"], **tol)
    if att is not None:
        np.testing.assert_allclose(gatt, want["att"].reshape(gatt.shape), **tol)
    else:
        assert gatt.size == 0


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_cpu_float32_backward_matches_float64(kernels, isa, rng, cell, reverse):
    # Sizes that reach the SIMD blocks (16/32 columns) and their edges.
    x, lengths, w, att = ref.random_case(rng, 45, 7, 33, 32, cell)
    go = rng.standard_normal((45, 7, 32))
    gf = rng.standard_normal((45, 32))
    want = _run(kernels, x, lengths, w, att, cell, reverse, grad_outputs=go, grad_final=gf)

    def f32(v):
        return None if v is None else np.asarray(v, np.float32)

    got = _run(kernels, f32(x), lengths, {k: f32(v) for k, v in w.items()}, f32(att), cell,
               reverse, grad_outputs=f32(go), grad_final=f32(gf))
    for g, r in zip(got[:6], want[:6]):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(r).max(initial=0)))


@pytest.mark.parametrize("cell", CELLS)
def test_cpu_backward_is_deterministic_across_threads(kernels, isa, rng, cell):
    x, lengths, w, att = ref.random_case(rng, 100, 7, 4, 5, cell, np.float32)
    go = rng.standard_normal((100, 7, 5)).astype(np.float32)
    gf = rng.standard_normal((100, 5)).astype(np.float32)
    one = _run(kernels, x, lengths, w, att, cell, False, grad_outputs=go, grad_final=gf,
               threads=1)
    three = _run(kernels, x, lengths, w, att, cell, False, grad_outputs=go, grad_final=gf,
                 threads=3)
    for a, b in zip(one[:6], three[:6]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_nan_in_padding_does_not_leak_and_nan_in_a_valid_step_propagates(kernels, rng, cell,
                                                                         reverse):
    x, _, w, att = ref.random_case(rng, 3, 6, 3, 4, cell, np.float32)
    lengths = np.array([3, 6, 0])
    x[0, 3:] = np.nan  # padding of row 0
    x[2] = np.nan      # row 2 has no valid step
    if att is not None:
        att[0, 3:] = np.nan
    x[1, 2, 0] = np.nan  # a valid step of row 1
    outputs, final, _, _ = _run(kernels, x, lengths, w, att, cell, reverse)
    assert np.all(np.isfinite(outputs[0])) and np.all(np.isfinite(final[0]))
    assert np.all(outputs[2] == 0) and np.all(final[2] == 0)
    assert np.isnan(final[1]).all()
    go = np.ones_like(outputs)
    gx, gatt, *_ = _run(kernels, x, lengths, w, att, cell, reverse, grad_outputs=go,
                        grad_final=np.ones_like(final))
    assert np.all(np.isfinite(gx[0, :3])) and np.all(gx[0, 3:] == 0) and np.all(gx[2] == 0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("device", ["cpu", "emulated"])
def test_empty_incoming_gradient_is_zero(kernels, isa, rng, cell, reverse, device):
    # An empty grad_outputs / grad_final means zero: the same gradients as an
    # array of zeros (a model using only the final state, or only the sequence).
    x, lengths, w, att = ref.random_case(rng, 40, 6, 5, 7, cell)
    go = rng.standard_normal((40, 6, 7))
    gf = rng.standard_normal((40, 7))
    empty = np.zeros((0,))
    for given, zeros in (((empty, gf), (np.zeros_like(go), gf)),
                         ((go, empty), (go, np.zeros_like(gf))),
                         ((empty, empty), (np.zeros_like(go), np.zeros_like(gf)))):
        got = _run(kernels, x, lengths, w, att, cell, reverse, grad_outputs=given[0],
                   grad_final=given[1], device=device)
        want = _run(kernels, x, lengths, w, att, cell, reverse, grad_outputs=zeros[0],
                    grad_final=zeros[1], device=device)
        for g, r in zip(got[:6], want[:6]):
            np.testing.assert_array_equal(g, r)
    with pytest.raises(ValueError, match="grad_outputs must have shape"):
        _run(kernels, x, lengths, w, att, cell, reverse, grad_outputs=np.zeros((3,)),
             grad_final=gf)


def _bidirectional_case(rng, b, t, e, u, cell, dtype=np.float64):
    x, lengths, w, att = ref.random_case(rng, b, t, e, u, cell, dtype)
    _, _, w2, _ = ref.random_case(rng, b, t, e, u, cell, dtype)
    stacked = {k: np.stack([w[k], w2[k]]) for k in w}
    return x, lengths, w, w2, stacked, att


def _two_directions(kernels, x, lengths, w, w2, att, cell, **kwargs):
    """directions=2 computed as a forward and a reverse run: concat / sums."""
    go, gf = kwargs.pop("grad_outputs", None), kwargs.pop("grad_final", None)
    u = w["bc"].shape[0]
    if go is None:
        f = _run(kernels, x, lengths, w, att, cell, False, **kwargs)
        r = _run(kernels, x, lengths, w2, att, cell, True, **kwargs)
        return (np.concatenate([f[0], r[0]], -1), np.concatenate([f[1], r[1]], -1),
                np.stack([f[2], r[2]]))
    f = _run(kernels, x, lengths, w, att, cell, False, grad_outputs=go[..., :u],
             grad_final=gf[:, :u], **kwargs)
    r = _run(kernels, x, lengths, w2, att, cell, True, grad_outputs=go[..., u:],
             grad_final=gf[:, u:], **kwargs)
    return (f[0] + r[0], f[1] + r[1], *(np.stack([a, b]) for a, b in zip(f[2:6], r[2:6])))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("device,threads", [("cpu", 3), ("emulated", 5), ("emulated", 128)])
def test_bidirectional_equals_a_forward_and_a_reverse_run(kernels, isa, rng, cell, device,
                                                          threads):
    # Output stride 2U and grad_x / grad_att accumulation, in the CPU kernels
    # and in the CUDA kernels' code (emulated).
    x, lengths, w, w2, stacked, att = _bidirectional_case(rng, 70, 6, 5, 7, cell)
    kwargs = dict(device=device, threads=threads)
    got = _run(kernels, x, lengths, stacked, att, cell, False, directions=2, **kwargs)
    want = _two_directions(kernels, x, lengths, w, w2, att, cell, **kwargs)
    assert got[0].shape == (70, 6, 14) and got[2].shape == (2, 70, 6, 21)
    for g, r in zip(got[:3], want):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-13)
    go = rng.standard_normal((70, 6, 14))
    gf = rng.standard_normal((70, 14))
    got = _run(kernels, x, lengths, stacked, att, cell, False, grad_outputs=go, grad_final=gf,
               directions=2, **kwargs)
    want = _two_directions(kernels, x, lengths, w, w2, att, cell, grad_outputs=go,
                           grad_final=gf, **kwargs)
    for g, r in zip(got[:6], want):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("directions", [1, 2])
@pytest.mark.parametrize("device,threads", [("cpu", 3), ("emulated", 5)])
def test_inference_forward_saves_no_gates_and_gives_the_same_outputs(kernels, isa, rng, cell,
                                                                     directions, device,
                                                                     threads):
    # gates = null (the op's gates output has no consumer): same outputs and
    # final state, bit for bit (lengths include 0, 1, T, > T and negative).
    x, lengths, w, _, stacked, att = _bidirectional_case(rng, 70, 6, 5, 7, cell, np.float32)
    weights = w if directions == 1 else stacked
    kwargs = dict(device=device, threads=threads, directions=directions)
    saved = _run(kernels, x, lengths, weights, att, cell, False, **kwargs)
    inference = _run(kernels, x, lengths, weights, att, cell, False, save_gates=False, **kwargs)
    assert saved[2].size > 0 and inference[2].shape == (0,)
    for s, i in zip(saved[:2], inference[:2]):
        np.testing.assert_array_equal(i, s)
    want_out, want_final = ref.forward(x, lengths, **w, att=att, cell=cell, reverse=False)
    np.testing.assert_allclose(inference[0][..., :7], want_out, **TOL[np.float32])
    np.testing.assert_allclose(inference[1][:, :7], want_final, **TOL[np.float32])


def test_bad_arguments_name_the_argument(kernels, rng):
    x, lengths, w, att = ref.random_case(rng, 3, 4, 2, 3, "AGRU")
    with pytest.raises(ValueError, match="att is required"):
        _run(kernels, x, lengths, w, None, "AGRU", False)
    with pytest.raises(ValueError, match="att must be None"):
        _run(kernels, x, lengths, w, att, "GRU", False)
    with pytest.raises(ValueError, match="wg must have shape"):
        kernels.dynamic_gru(x, lengths, w["wg"][:-1], w["bg"], w["wc"], w["bc"])
    with pytest.raises(ValueError, match="cell must be"):
        _run(kernels, x, lengths, w, None, "LSTM", False)


# ---- the CUDA kernels' code, emulated on the host, against the CPU kernel -------
# (dynamic_gru_rowwise.h: the phases the kernels run between __syncthreads,
# here thread by thread; block sizes below and above U, 2U, 3U and E.)


@pytest.mark.parametrize("b,t,e,u,threads", [(9, 5, 3, 4, 128), (6, 4, 5, 7, 3),
                                             (5, 6, 2, 3, 1), (0, 3, 2, 2, 32), (3, 0, 2, 2, 32)])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_emulated_gpu_code_matches_cpu(kernels, rng, b, t, e, u, threads, cell, reverse):
    x, lengths, w, att = ref.random_case(rng, b, t, e, u, cell)
    cpu = _run(kernels, x, lengths, w, att, cell, reverse)
    emulated = _run(kernels, x, lengths, w, att, cell, reverse, device="emulated",
                    threads=threads)
    for c, g in zip(cpu[:3], emulated[:3]):
        np.testing.assert_allclose(g, c, rtol=1e-12, atol=1e-13)
    go = rng.standard_normal((b, t, u))
    gf = rng.standard_normal((b, u))
    cpu = _run(kernels, x, lengths, w, att, cell, reverse, grad_outputs=go, grad_final=gf)
    emulated = _run(kernels, x, lengths, w, att, cell, reverse, grad_outputs=go, grad_final=gf,
                    device="emulated", threads=threads)
    for c, g in zip(cpu[:6], emulated[:6]):
        np.testing.assert_allclose(g, c, rtol=1e-11, atol=1e-12)


# ---- GPU against the CPU ------------------------------------------------------

GPU_SHAPES = [(70, 6, 5, 7), (33, 20, 16, 32), (8, 5, 8, 128), (6, 4, 3, 200), (0, 3, 2, 2),
              (3, 0, 2, 2)]


@pytest.mark.gpu
@pytest.mark.parametrize("b,t,e,u", GPU_SHAPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_matches_cpu(gpu_kernels, rng, b, t, e, u, cell, reverse, dtype):
    x, lengths, w, att = ref.random_case(rng, b, t, e, u, cell, dtype)
    cpu = _run(gpu_kernels, x, lengths, w, att, cell, reverse)
    gpu = _run(gpu_kernels, x, lengths, w, att, cell, reverse, device="gpu")
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for c, g in zip(cpu[:3], gpu[:3]):
        np.testing.assert_allclose(g, c, **tol)
    go = rng.standard_normal((b, t, u)).astype(dtype)
    gf = rng.standard_normal((b, u)).astype(dtype)
    cpu = _run(gpu_kernels, x, lengths, w, att, cell, reverse, grad_outputs=go, grad_final=gf)
    gpu = _run(gpu_kernels, x, lengths, w, att, cell, reverse, grad_outputs=go, grad_final=gf,
               device="gpu")
    for c, g in zip(cpu[:6], gpu[:6]):
        np.testing.assert_allclose(g, c, **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("u", [32, 200])
def test_gpu_inference_forward_matches_the_saving_forward(gpu_kernels, rng, cell, u):
    # The persistent kernel (u <= 128) and the per-step one, gates = null.
    x, lengths, w, att = ref.random_case(rng, 33, 20, 16, u, cell, np.float32)
    saved = _run(gpu_kernels, x, lengths, w, att, cell, False, device="gpu")
    inference = _run(gpu_kernels, x, lengths, w, att, cell, False, device="gpu",
                     save_gates=False)
    assert inference[2].shape == (0,)
    for s, i in zip(saved[:2], inference[:2]):
        np.testing.assert_array_equal(i, s)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_bidirectional_matches_cpu(gpu_kernels, rng, cell, dtype):
    x, lengths, _, _, stacked, att = _bidirectional_case(rng, 33, 20, 16, 32, cell, dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    cpu = _run(gpu_kernels, x, lengths, stacked, att, cell, False, directions=2)
    gpu = _run(gpu_kernels, x, lengths, stacked, att, cell, False, directions=2, device="gpu")
    for c, g in zip(cpu[:3], gpu[:3]):
        np.testing.assert_allclose(g, c, **tol)
    go = rng.standard_normal((33, 20, 64)).astype(dtype)
    gf = rng.standard_normal((33, 64)).astype(dtype)
    cpu = _run(gpu_kernels, x, lengths, stacked, att, cell, False, grad_outputs=go,
               grad_final=gf, directions=2)
    gpu = _run(gpu_kernels, x, lengths, stacked, att, cell, False, grad_outputs=go,
               grad_final=gf, directions=2, device="gpu")
    for c, g in zip(cpu[:6], gpu[:6]):
        np.testing.assert_allclose(g, c, **tol)
