"""A float64 NumPy reference of DeepCTR's sequence pooling, written from the
spec (section 2), for the ops and the kernel-module tests."""

from __future__ import annotations

import numpy as np

SHIFT = 1e9
EPS = 1e-8


def random_rows(rng: np.random.Generator, layout: str, batch: int, time: int,
                index=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """A random row description for the kernel module and its valid [B, T].

    layout "lengths": lengths [B] with 0, T, > T and negatives; "mask": a bool
    [B, T] mask; "ragged": row_splits [B + 1]. The first row is always empty.
    """
    if layout == "lengths":
        lengths = rng.integers(-2, time + 3, size=batch).astype(index)
        lengths[: min(batch, 3)] = [0, time, time + 5][: min(batch, 3)]
        return lengths, np.arange(time)[None, :] < lengths[:, None]
    if layout == "mask":
        mask = rng.random((batch, time)) < 0.4
        if batch:
            mask[0] = False
        return mask, mask
    row_lengths = rng.integers(0, time + 1, size=batch)
    if batch:
        row_lengths[0] = 0
    splits = np.concatenate([[0], np.cumsum(row_lengths)]).astype(index)
    return splits, np.arange(time)[None, :] < row_lengths[:, None]


def valid_from_lengths(lengths: np.ndarray, time: int) -> np.ndarray:
    lengths = np.asarray(lengths).reshape(-1)
    if lengths.dtype.kind == "f":
        lengths = np.trunc(lengths)
    return np.arange(time)[None, :] < lengths[:, None]


def pool(values: np.ndarray, valid: np.ndarray, divisor_base: np.ndarray, mode: str,
         padded: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Returns (pooled [B,1,E], d pooled / d values as a function of upstream ones).

    The second item is the gradient for an upstream gradient of all ones, which
    is enough to check where and how the gradient is split.
    """
    x = values.astype(np.float64)
    b, t, e = x.shape
    out = np.zeros((b, 1, e))
    grad = np.zeros_like(x)
    for i in range(b):
        v = valid[i]
        if mode == "max":
            if v.any():
                cand = np.where(v[:, None], x[i], -np.inf)
            elif padded and t > 0:
                # The shift happens in the input's precision: in float32 every
                # |x| < 32 lands on exactly -1e9, so all steps tie.
                shift_dtype = values.dtype if values.dtype.itemsize >= 4 else np.dtype(np.float32)
                shifted = values[i].astype(shift_dtype) - shift_dtype.type(SHIFT)
                cand = shifted.astype(np.float64)
            else:
                out[i, 0] = -np.inf if padded else -SHIFT
                continue
            # A NaN step makes the max NaN; TF's (equal / count) * grad is then
            # 0 / 0, NaN at every competing step.
            m = cand.max(axis=0)
            ties = cand == m
            out[i, 0] = m
            competing = np.broadcast_to(v[:, None] if v.any() else True, ties.shape)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(np.isnan(m), np.nan, 1.0 / ties.sum(axis=0, keepdims=True))
            grad[i] = np.where(competing & (ties | np.isnan(m)), share, 0.0)
        else:
            # Padded steps are never read: NaN or Inf there does not leak, unlike
            # DeepCTR's x * mask.
            s = np.where(v[:, None], x[i], 0.0).sum(axis=0)
            d = 1.0
            if mode == "mean":
                d = float(divisor_base[i]) + EPS
            out[i, 0] = s / d
            grad[i] = np.where(v[:, None], 1.0 / d, 0.0)
    return out, grad


def max_argmax(values: np.ndarray, valid: np.ndarray, padded: bool = True) -> np.ndarray:
    """The max forward's argmax [B,1,E]: the step of a unique max, -1 when not
    a single step ties for it, -2 when the row has no step at all."""
    b, t, e = values.shape
    out = np.full((b, 1, e), -2, np.int32)
    for i in range(b):
        v = valid[i]
        if v.any():
            cand = np.where(v[:, None], values[i].astype(np.float64), -np.inf)
            cand[~v] = np.nan  # Padding never competes, not even at -inf.
        elif padded and t > 0:
            shift_dtype = values.dtype if values.dtype.itemsize >= 4 else np.dtype(np.float32)
            cand = (values[i].astype(shift_dtype) - shift_dtype.type(SHIFT)).astype(np.float64)
        else:
            continue
        hits = cand == np.nanmax(cand, axis=0)
        out[i, 0] = np.where(hits.sum(axis=0) == 1, hits.argmax(axis=0), -1)
    return out
