"""Float64 NumPy reference of DeepCTR's DynamicGRU cells (GRU/AIGRU, AGRU, AUGRU)
and their length semantics (spec section 10); numpy only, so the GPU machine's
kernel tests can use it too."""

from __future__ import annotations

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def clamp_lengths(lengths, time):
    return np.clip(np.asarray(lengths, np.int64).reshape(-1), 0, time)


def forward(x, lengths, wg, bg, wc, bc, att=None, cell="GRU", reverse=False):
    """(outputs [B,T,U], final_state [B,U]) in float64.

    Row b runs len = clamp(lengths[b], 0, T) steps from a zero state, at times
    0..len-1 (reverse: len-1..0); outputs are 0 at t >= len; the final state is
    the state after the last step (0 for len 0)."""
    x = np.asarray(x, np.float64)
    b_, t_, _ = x.shape
    u = wc.shape[1]
    wg, bg, wc, bc = (np.asarray(w, np.float64) for w in (wg, bg, wc, bc))
    if att is not None:
        att = np.asarray(att, np.float64).reshape(b_, t_)
    outputs = np.zeros((b_, t_, u))
    final = np.zeros((b_, u))
    for b, length in enumerate(clamp_lengths(lengths, t_)):
        h = np.zeros(u)
        times = range(length - 1, -1, -1) if reverse else range(length)
        for t in times:
            gates = _sigmoid(np.concatenate([x[b, t], h]) @ wg + bg)
            r, z = gates[:u], gates[u:]
            c = np.tanh(np.concatenate([x[b, t], r * h]) @ wc + bc)
            if cell in ("GRU", "AIGRU"):
                h = z * h + (1 - z) * c
            elif cell == "AGRU":
                h = (1 - att[b, t]) * h + att[b, t] * c
            elif cell == "AUGRU":
                zz = (1 - att[b, t]) * z
                h = zz * h + (1 - zz) * c
            else:
                raise ValueError(cell)
            outputs[b, t] = h
        final[b] = h
    return outputs, final


def random_case(rng, batch, time, e, u, cell, dtype=np.float64, lengths=None):
    """x, lengths (int64 [B]; covers 0, 1, T, > T and negatives), weights, att."""
    x = rng.standard_normal((batch, time, e)).astype(dtype)
    if lengths is None:
        special = np.array([0, 1, time, time + 3, -2])
        lengths = rng.integers(0, time + 1, size=batch)
        lengths[: min(batch, 5)] = special[: min(batch, 5)]
    scale = 1.0 / np.sqrt(e + u)
    weights = dict(
        wg=(rng.standard_normal((e + u, 2 * u)) * scale).astype(dtype),
        bg=(1.0 + 0.1 * rng.standard_normal(2 * u)).astype(dtype),
        wc=(rng.standard_normal((e + u, u)) * scale).astype(dtype),
        bc=(0.1 * rng.standard_normal(u)).astype(dtype),
    )
    att = rng.random((batch, time, 1)).astype(dtype) if cell in ("AGRU", "AUGRU") else None
    return x, np.asarray(lengths, np.int64), weights, att
