"""GPU vs CPU timing of the pooling, attention-softmax, dynamic-GRU and fused
embedding-pooling kernels through the pybind11 module.

Run by tools/gpu_check.sh (DEEPCTR_OPS_KERNELS_DIR points at the build). Prints,
per case, the CUDA-event time of one launch, the bytes it must move as GB/s,
and the CPU kernel's wall time on all cores for comparison.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

import numpy as np


def load_kernels():
    directory = os.environ.get("DEEPCTR_OPS_KERNELS_DIR")
    if directory:
        sys.path.insert(0, directory)
        return importlib.import_module("_kernels")
    return importlib.import_module("deepctr_ops._kernels")


def main() -> int:
    kernels = load_kernels()
    gpu = kernels.cuda_built and kernels.gpu_count() > 0
    rng = np.random.default_rng(0)
    print("cpu ms = the same kernel on this host's CPU through numpy, which allocates a fresh\n"
          "output each call (page faults included); `deepctr-ops bench` has the TF op timings.")
    print(f"{'case':44s} {'pass':4s} {'gpu ms':>8s} {'GB/s':>7s} {'cpu ms':>8s} {'cpu/gpu':>8s}")
    for mode in ("sum", "mean", "max"):
        for b, t, e, mean_len in ((4096, 50, 64, 25), (1024, 200, 32, 20), (65536, 50, 64, 25)):
            x = rng.standard_normal((b, t, e), dtype=np.float32)
            lengths = np.clip(rng.poisson(mean_len, size=b), 0, t).astype(np.int32)
            upstream = rng.standard_normal((b, 1, e), dtype=np.float32)
            valid_bytes = 4 * e * int(lengths.sum())
            # The max backward reads the forward's argmax, not the values.
            _, _, argmax = kernels.sequence_pool(x, lengths, mode, return_argmax=True)
            for label, grad, moved in (("fwd", None, valid_bytes + 4 * b * e + argmax.nbytes),
                                       ("bwd", upstream, 4 * b * t * e + 4 * b * e
                                        + argmax.nbytes)):
                kwargs = {"grad": grad, "argmax": argmax if grad is not None else None}
                t0 = time.perf_counter()
                for _ in range(5):
                    kernels.sequence_pool(x, lengths, mode, **kwargs)
                cpu_ms = (time.perf_counter() - t0) / 5 * 1e3
                name = f"{mode} B{b} T{t} E{e} len~{mean_len}"
                if gpu:
                    _, gpu_ms = kernels.sequence_pool(x, lengths, mode, device="gpu", repeats=50,
                                                      **kwargs)
                    print(f"{name:44s} {label:4s} {gpu_ms:8.3f} {moved / gpu_ms / 1e6:7.0f} "
                          f"{cpu_ms:8.2f} {cpu_ms / gpu_ms:7.1f}x")
                else:
                    print(f"{name:44s} {label:4s} {'n/a':>8s} {'n/a':>7s} {cpu_ms:8.2f}")
    bench_attention(kernels, gpu, rng)
    bench_attention_pool(kernels, gpu, rng)
    bench_gru(kernels, gpu, rng)
    bench_embedding_pool(kernels, gpu, rng)
    return 0


def bench_attention(kernels, gpu, rng):
    """Masked attention softmax, [heads*B, Tq, Tk] logits and a [B, Tk] key mask."""
    for dtype in (np.float32, np.float64):
        for heads, b, t in ((8, 512, 50), (8, 2048, 50), (2, 256, 200)):
            scores = rng.standard_normal((heads * b, t, t)).astype(dtype)
            key_valid = np.arange(t)[None, :] < rng.integers(1, t + 1, size=b)[:, None]
            upstream = rng.standard_normal(scores.shape).astype(dtype)
            probs, _ = kernels.attention_softmax(scores, key_valid, 8.0**0.5, True)
            size = scores.nbytes
            for label, kwargs, moved in (
                    ("fwd", {}, 2 * size + key_valid.nbytes),
                    ("bwd", {"grad": upstream, "probs": probs}, 3 * size + key_valid.nbytes)):
                t0 = time.perf_counter()
                for _ in range(5):
                    kernels.attention_softmax(scores, key_valid, 8.0**0.5, True, **kwargs)
                cpu_ms = (time.perf_counter() - t0) / 5 * 1e3
                name = f"attention {np.dtype(dtype).name} h{heads} B{b} T{t}"
                if gpu:
                    _, gpu_ms = kernels.attention_softmax(scores, key_valid, 8.0**0.5, True,
                                                          device="gpu", repeats=50, **kwargs)
                    print(f"{name:44s} {label:4s} {gpu_ms:8.3f} {moved / gpu_ms / 1e6:7.0f} "
                          f"{cpu_ms:8.2f} {cpu_ms / gpu_ms:7.1f}x")
                else:
                    print(f"{name:44s} {label:4s} {'n/a':>8s} {'n/a':>7s} {cpu_ms:8.2f}")


def bench_attention_pool(kernels, gpu, rng):
    """DIN attention pooling (the bench rows' shapes), lengths uniform in [0, T].

    GB/s counts the keys read once and, for the backward, grad_keys written once.
    """
    for b, t, e, units in ((1024, 50, 32, (80, 40)), (1024, 100, 64, (64, 16))):
        q = rng.standard_normal((b, 1, e), dtype=np.float32)
        k = rng.standard_normal((b, t, e), dtype=np.float32)
        lengths = rng.integers(0, t + 1, size=b).astype(np.int32)
        dims = [4 * e, *units, 1]
        ws = [rng.standard_normal((dims[i], dims[i + 1]), dtype=np.float32) * 0.1
              for i in range(len(dims) - 1)]
        bs = [np.zeros(dims[i + 1], np.float32) for i in range(len(dims) - 1)]
        upstream = rng.standard_normal((b, 1, e), dtype=np.float32)
        for label, grad, moved in (("fwd", None, k.nbytes), ("bwd", upstream, 2 * k.nbytes)):
            t0 = time.perf_counter()
            for _ in range(3):
                kernels.attention_pool(q, k, lengths, ws, bs, grad=grad)
            cpu_ms = (time.perf_counter() - t0) / 3 * 1e3
            name = f"attention_pool B{b} T{t} E{e} {units}"
            if gpu:
                gpu_ms = kernels.attention_pool(q, k, lengths, ws, bs, grad=grad, device="gpu",
                                                repeats=20)[-1]
                print(f"{name:44s} {label:4s} {gpu_ms:8.3f} {moved / gpu_ms / 1e6:7.0f} "
                      f"{cpu_ms:8.2f} {cpu_ms / gpu_ms:7.1f}x")
            else:
                print(f"{name:44s} {label:4s} {'n/a':>8s} {'n/a':>7s} {cpu_ms:8.2f}")


def bench_gru(kernels, gpu, rng):
    """Dynamic GRU (GRU and AUGRU), lengths uniform in [0, T]; GB/s counts the [B,T,*]
    tensors read and written (the kernels are latency-bound, not bandwidth-bound). The CPU
    bwd column includes the forward that the binding runs first; the GPU time does not."""
    for cell in ("GRU", "AUGRU"):
        for b, t, e in ((256, 50, 32), (1024, 100, 64)):
            u = e
            x = rng.standard_normal((b, t, e), dtype=np.float32)
            lengths = rng.integers(0, t + 1, size=b)
            weights = [rng.standard_normal(shape, dtype=np.float32) * 0.1
                       for shape in ((e + u, 2 * u), (2 * u,), (e + u, u), (u,))]
            att = rng.random((b, t, 1), dtype=np.float32) if cell == "AUGRU" else None
            go = rng.standard_normal((b, t, u), dtype=np.float32)
            gf = rng.standard_normal((b, u), dtype=np.float32)
            for label, kwargs, moved in (
                    ("fwd", {}, 4 * b * t * (e + 4 * u)),
                    ("bwd", {"grad_outputs": go, "grad_final": gf}, 4 * b * t * (2 * e + 6 * u))):
                t0 = time.perf_counter()
                for _ in range(3):
                    kernels.dynamic_gru(x, lengths, *weights, att=att, cell=cell, **kwargs)
                cpu_ms = (time.perf_counter() - t0) / 3 * 1e3
                name = f"gru {cell} B{b} T{t} E{e}"
                if gpu:
                    result = kernels.dynamic_gru(x, lengths, *weights, att=att, cell=cell,
                                                 device="gpu", repeats=20, **kwargs)
                    gpu_ms = result[-1]
                    print(f"{name:44s} {label:4s} {gpu_ms:8.3f} {moved / gpu_ms / 1e6:7.0f} "
                          f"{cpu_ms:8.2f} {cpu_ms / gpu_ms:7.1f}x")
                else:
                    print(f"{name:44s} {label:4s} {'n/a':>8s} {'n/a':>7s} {cpu_ms:8.2f}")


def bench_embedding_pool(kernels, gpu, rng):
    """Fused embedding lookup + pooling, lengths ~ Poisson, ids uniform over the vocabulary.

    GB/s counts the table rows read, the ids and the output (forward), and the gradient
    rows and indices written plus the ids read (backward: GradRows + Backward, without the
    host copy of the row count between them)."""
    shapes = ((4096, 50, 64, 100_000, 25), (65536, 50, 32, 1_000_000, 25))
    for mode in ("sum", "mean", "max"):
        for b, t, e, vocab, mean_len in shapes:
            table = rng.standard_normal((vocab, e), dtype=np.float32)
            ids = rng.integers(1, vocab, size=(b, t)).astype(np.int64)
            lengths = np.clip(rng.poisson(mean_len, size=b), 0, t).astype(np.int32)
            upstream = rng.standard_normal((b, 1, e), dtype=np.float32)
            valid = int(lengths.sum())
            _, argmax, _ = kernels.embedding_pool_forward(table, ids, lengths, mode=mode)
            cases = (
                ("fwd", kernels.embedding_pool_forward, (table, ids, lengths), {"mode": mode},
                 4 * e * valid + 8 * valid + 4 * b * e),
                ("bwd", kernels.embedding_pool_backward, (table, ids, lengths, upstream),
                 {"mode": mode, "argmax": argmax if mode == "max" else None},
                 4 * e * valid + 16 * valid + 4 * b * e))
            for label, fn, args, kwargs, moved in cases:
                t0 = time.perf_counter()
                for _ in range(3):
                    fn(*args, **kwargs)
                cpu_ms = (time.perf_counter() - t0) / 3 * 1e3
                name = f"embedding_pool {mode} B{b} T{t} E{e} V{vocab}"
                if gpu:
                    gpu_ms = fn(*args, device="gpu", repeats=20, **kwargs)[-1]
                    print(f"{name:44s} {label:4s} {gpu_ms:8.3f} {moved / gpu_ms / 1e6:7.0f} "
                          f"{cpu_ms:8.2f} {cpu_ms / gpu_ms:7.1f}x")
                else:
                    print(f"{name:44s} {label:4s} {'n/a':>8s} {'n/a':>7s} {cpu_ms:8.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
