"""Float64 NumPy statement of DeepCTR Transformer's key mask + blinding + softmax.

DeepCTR (layers/sequence.py, Transformer.call) computes, per head-major row
n = j*B + b of the [h*B, Tq, Tk] logits: scores / divisor, then
tf.where(key_mask, logits, -2**32 + 1), then (blinding) matrix_set_diag with
-2**32 + 1 too, then softmax over Tk. The padding value replaces the logit, so
a row with no eligible key is uniform. The gradient is softmax's, zero where
tf.where / matrix_set_diag cut the graph, then divided by the divisor.
"""

from __future__ import annotations

import numpy as np

NEG = -(2.0**32) + 1


def eligible(key_valid: np.ndarray, rows: int, time_q: int, blinding: bool) -> np.ndarray:
    """bool [rows, Tq, Tk]: key k is eligible for query q of row n (sample n % B)."""
    batch, time_k = key_valid.shape
    keys = np.broadcast_to(key_valid[:, None, :], (batch, time_q, time_k))
    if blinding:
        keys = keys & ~np.eye(time_q, time_k, dtype=bool)[None]
    heads = rows // batch if batch else 0
    return np.tile(keys, (heads, 1, 1)).reshape(rows, time_q, time_k)


def forward(scores, key_valid, divisor: float = 1.0, blinding: bool = False) -> np.ndarray:
    """probs [rows, Tq, Tk] in float64."""
    s = np.asarray(scores, np.float64)
    if s.size == 0:
        return np.zeros(s.shape)
    logits = np.where(eligible(key_valid, s.shape[0], s.shape[1], blinding), s / divisor, NEG)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def backward(grad, probs, key_valid, divisor: float = 1.0, blinding: bool = False) -> np.ndarray:
    """d loss / d scores in float64, for the upstream grad and the forward's probs."""
    g = np.asarray(grad, np.float64)
    p = np.asarray(probs, np.float64)
    if g.size == 0:
        return np.zeros(g.shape)
    d = (g - (g * p).sum(axis=-1, keepdims=True)) * p
    return np.where(eligible(key_valid, g.shape[0], g.shape[1], blinding), d / divisor, 0.0)
