"""A NumPy reference of the fused embedding lookup + sequence pooling
(cc/kernels/embedding_pool.h), written from the contract, not from the C++.

Sums, means and gradients are float64. Max decides its maximum and its ties
in the kernels' accumulation type (float32 for 16-bit tables): the contract
compares x * w - shift there, and in float32 the 1e9 shift makes nearby
values tie, which float64 would not.
"""

from __future__ import annotations

import numpy as np

SHIFT = 1e9
EPS = 1e-8
TIED = -1
NO_STEP = -2


def accumulation_dtype(dtype) -> np.dtype:
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


class Row:
    """One batch row: its steps (indices into the flat ids), which are valid,
    the mean's divisor and the steps max pools."""

    def __init__(self, steps, valid, divisor, padded, mode):
        self.steps = steps
        self.valid = valid
        self.divisor = divisor
        self.padded = padded
        if valid.any() or mode != "max":
            self.pooled = steps[valid]
            self.shift = 0.0
        elif padded:
            # No valid step: DeepCTR's mask mode lets every step compete, -1e9.
            self.pooled = steps
            self.shift = SHIFT
        else:
            self.pooled = steps[:0]
            self.shift = 0.0


def plan_rows(ids, rows, layout, mode, mask_zero=False, splits_are_monotone=False):
    """The Row of every batch row. Ragged `rows` are row_splits; with
    splits_are_monotone=False they must be valid (start 0, rise, end at N)."""
    flat = np.asarray(ids).reshape(-1)
    out = []
    if layout == "ragged":
        splits = np.asarray(rows, np.int64)
        if not splits_are_monotone:
            assert splits[0] == 0 and splits[-1] == flat.size and (np.diff(splits) >= 0).all()
        batch, time = len(splits) - 1, None
    else:
        batch, time = np.asarray(ids).shape
    for b in range(batch):
        if layout == "ragged":
            steps = np.arange(splits[b], splits[b + 1])
            layout_valid = np.ones(steps.size, bool)
            length = float(steps.size)
        else:
            steps = b * time + np.arange(time)
            if layout == "lengths":
                raw = int(np.asarray(rows).reshape(-1)[b])
                layout_valid = np.arange(time) < min(max(raw, 0), time)
                length = float(raw)
            else:
                layout_valid = np.asarray(rows)[b].astype(bool)
                length = float(layout_valid.sum())
        valid = layout_valid & (flat[steps] != 0) if mask_zero else layout_valid
        divisor = float(valid.sum()) if mask_zero else length
        out.append(Row(steps, valid, divisor, layout != "ragged", mode))
    return out


def _gather(table, ids, zero_bad_ids):
    """Table rows of `ids` (float64); an id outside [0, vocab) reads zeros
    (the GPU) or raises (the CPU, only for ids that are read)."""
    vocab, depth = table.shape
    ids = np.asarray(ids, np.int64)
    bad = (ids < 0) | (ids >= vocab)
    if bad.any() and not zero_bad_ids:
        raise IndexError(f"id {ids[bad][0]} is not in [0, {vocab})")
    x = np.zeros((ids.size, depth))
    x[~bad] = table[ids[~bad]].astype(np.float64)
    return x


def first_bad_read(ids, rows, layout, mode, vocab, mask_zero=False):
    """(flat step, id) of the lowest read step whose id is out of range, or None."""
    flat = np.asarray(ids, np.int64).reshape(-1)
    read = np.concatenate([r.pooled for r in plan_rows(ids, rows, layout, mode, mask_zero)]
                          + [np.zeros(0, np.int64)])
    bad = sorted(int(s) for s in read if not 0 <= flat[s] < vocab)
    return (bad[0], int(flat[bad[0]])) if bad else None


def _column_max(table, flat, weights, row, acc):
    """Max values [E] in the accumulation type and per-step ties [n, E]."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _column_max_values(table, flat, weights, row, acc)


def _column_max_values(table, flat, weights, row, acc):
    x = _gather(table, flat[row.pooled], True).astype(acc)
    if weights is not None:
        x = x * np.asarray(weights).reshape(-1)[row.pooled].astype(acc)[:, None]
    v = x - acc.type(row.shift)
    nan = np.isnan(v).any(axis=0)
    m = np.where(nan, np.nan, np.max(np.where(np.isnan(v), -np.inf, v), axis=0)).astype(acc)
    return m, v == m[None, :]


def _setup(table, ids, rows, layout, mode, weights, mask_zero, splits_are_monotone):
    """What forward and backward both start from: (table, depth, accumulation
    dtype, flat ids, flat float64 weights or None, row plans)."""
    table = np.asarray(table)
    w_flat = None if weights is None else np.asarray(weights).reshape(-1).astype(np.float64)
    return (table, table.shape[1], accumulation_dtype(table.dtype), np.asarray(ids).reshape(-1),
            w_flat, plan_rows(ids, rows, layout, mode, mask_zero, splits_are_monotone))


def forward(table, ids, rows, layout, mode, weights=None, mask_zero=False,
            zero_bad_ids=False, splits_are_monotone=False):
    """(pooled [B,1,E] float64, argmax [B,1,E] int32 or None)."""
    table, depth, acc, flat, w_flat, plans = _setup(table, ids, rows, layout, mode, weights,
                                                   mask_zero, splits_are_monotone)
    pooled = np.zeros((len(plans), 1, depth))
    argmax = np.full((len(plans), 1, depth), NO_STEP, np.int32) if mode == "max" else None
    for b, row in enumerate(plans):
        if mode != "max":
            x = _gather(table, flat[row.pooled], zero_bad_ids)
            if w_flat is not None:
                x = x * w_flat[row.pooled][:, None]
            s = x.sum(axis=0)
            pooled[b, 0] = s / (row.divisor + EPS) if mode == "mean" else s
            continue
        if row.pooled.size == 0:
            pooled[b, 0] = -np.inf if row.padded else -SHIFT
            continue
        _gather(table, flat[row.pooled], zero_bad_ids)  # Raises for a bad id on the CPU.
        m, ties = _column_max(table, flat, weights, row, acc)
        pooled[b, 0] = m
        hits = ties.sum(axis=0)
        positions = row.pooled[ties.argmax(axis=0)] - row.steps[0]
        argmax[b, 0] = np.where(hits == 1, positions, TIED)
    return pooled, argmax


def backward(table, ids, rows, layout, mode, grad, weights=None, mask_zero=False,
             zero_bad_ids=False, splits_are_monotone=False):
    """(values [K,E], indices [K], grad_weights like ids or None), float64:
    one gradient row per pooled step, batch row by batch row, in step order."""
    table, depth, acc, flat, w_flat, plans = _setup(table, ids, rows, layout, mode, weights,
                                                   mask_zero, splits_are_monotone)
    grad = np.asarray(grad).reshape(len(plans), depth).astype(np.float64)
    values, indices = [np.zeros((0, depth))], [np.zeros(0, np.int64)]
    grad_weights = np.zeros(flat.size)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf follow the kernels.
        for b, row in enumerate(plans):
            _backward_row(table, flat, grad, w_flat, weights, row, b, mode, acc, zero_bad_ids,
                          values, indices, grad_weights)
    gw = None if weights is None else grad_weights.reshape(np.asarray(ids).shape)
    return np.concatenate(values), np.concatenate(indices), gw


def _backward_row(table, flat, grad, w_flat, weights, row, b, mode, acc, zero_bad_ids,
                  values, indices, grad_weights):
    depth = table.shape[1]
    n = row.pooled.size
    if n == 0:
        return
    x = _gather(table, flat[row.pooled], zero_bad_ids)
    if mode == "sum":
        g = np.broadcast_to(grad[b], (n, depth))
    elif mode == "mean":
        g = np.broadcast_to(grad[b] / (row.divisor + EPS), (n, depth))
    else:
        m, ties = _column_max(table, flat, weights, row, acc)
        with np.errstate(divide="ignore"):
            share = np.where(np.isnan(m), np.nan, 1.0 / ties.sum(axis=0))
        g = np.where(ties | np.isnan(m)[None, :], share * grad[b], 0.0)
    w = np.ones(n) if w_flat is None else w_flat[row.pooled]
    values.append(g * w[:, None])
    indices.append(flat[row.pooled].astype(np.int64))
    grad_weights[row.pooled] = (g * x).sum(axis=1)
