"""Float64 NumPy statement of DeepCTR's AttentionSequencePoolingLayer (DIN).

The forward is DeepCTR's graph literally: u = [q, k, q - k, q * k] for every
step (the [B, T, 4E] tensor the kernels never build), the MLP, the linear score,
tf.where(valid, score, -2**32 + 1 or 0), the optional softmax over T, and the
score-weighted sum of the keys. The backward is that graph's chain rule, written
out (no folding), so that it checks the kernels' folded first layer.
"""

from __future__ import annotations

import numpy as np

NEG = -(2.0**32) + 1

ACTIVATIONS = {
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda a: a * (1 - a)),
    "relu": (lambda x: np.maximum(x, 0), lambda a: (a > 0).astype(np.float64)),
    "tanh": (np.tanh, lambda a: 1 - a * a),
    "linear": (lambda x: x, lambda a: np.ones_like(a)),
}


def valid_steps(rows: np.ndarray, time: int) -> np.ndarray:
    """bool [B, T] from lengths [B] (clamped like tf.sequence_mask) or a mask."""
    if rows.dtype == bool:
        return rows.astype(bool)
    return np.arange(time)[None, :] < np.asarray(rows).reshape(-1, 1)


def _forward_parts(query, keys, valid, kernels, biases, activation, normalize):
    q = np.asarray(query, np.float64)
    k = np.asarray(keys, np.float64)
    qs = np.broadcast_to(q, k.shape)
    x = np.concatenate([qs, k, qs - k, qs * k], axis=-1)
    act, _ = ACTIVATIONS[activation]
    acts = [x]
    for w, b in zip(kernels[:-1], biases[:-1]):
        acts.append(act(acts[-1] @ np.asarray(w, np.float64) + np.asarray(b, np.float64)))
    score = (acts[-1] @ np.asarray(kernels[-1], np.float64))[..., 0] + float(biases[-1][0])
    logits = np.where(valid, score, NEG if normalize else 0.0)
    if normalize:
        e = np.exp(logits - logits.max(axis=1, keepdims=True, initial=-np.inf))
        weights = e / e.sum(axis=1, keepdims=True)
    else:
        weights = logits
    return acts, weights


def forward(query, keys, rows, kernels, biases, activation="sigmoid", normalize=False,
            return_score=False) -> np.ndarray:
    keys = np.asarray(keys, np.float64)
    valid = valid_steps(np.asarray(rows), keys.shape[1])
    _, weights = _forward_parts(query, keys, valid, kernels, biases, activation, normalize)
    if return_score:
        return weights[:, None, :]
    return np.einsum("bt,bte->be", weights, keys)[:, None, :]


def backward(query, keys, rows, kernels, biases, grad, activation="sigmoid", normalize=False,
             return_score=False):
    """(grad_query, grad_keys, grad_kernels, grad_biases) in float64."""
    q = np.asarray(query, np.float64)
    k = np.asarray(keys, np.float64)
    batch, time, e = k.shape
    valid = valid_steps(np.asarray(rows), time)
    acts, weights = _forward_parts(q, k, valid, kernels, biases, activation, normalize)
    g = np.asarray(grad, np.float64)[:, 0, :]
    grad_keys = np.zeros_like(k)
    if return_score:
        dweights = g
    else:
        dweights = np.einsum("be,bte->bt", g, k)
        grad_keys += weights[:, :, None] * g[:, None, :]
    if normalize:
        dlogits = weights * (dweights - (weights * dweights).sum(axis=1, keepdims=True))
    else:
        dlogits = dweights
    dscore = np.where(valid, dlogits, 0.0)
    _, act_grad = ACTIVATIONS[activation]
    ws = [np.asarray(w, np.float64) for w in kernels]
    grad_kernels = [None] * len(ws)
    grad_biases = [None] * len(ws)
    grad_kernels[-1] = np.einsum("bth,bt->h", acts[-1], dscore)[:, None]
    grad_biases[-1] = np.array([dscore.sum()])
    d = dscore[..., None] * ws[-1][:, 0]
    for i in range(len(ws) - 2, -1, -1):
        d = d * act_grad(acts[i + 1])
        grad_kernels[i] = np.einsum("bti,btj->ij", acts[i], d)
        grad_biases[i] = d.sum(axis=(0, 1))
        d = d @ ws[i].T
    # d is d loss / d u [B, T, 4E]; u = [q, k, q - k, q * k].
    dq_, dk_, dd_, dp_ = np.split(d, 4, axis=-1)
    grad_query = (dq_ + dd_ + dp_ * k).sum(axis=1, keepdims=True)
    grad_keys += dk_ - dd_ + dp_ * q
    return grad_query, grad_keys, grad_kernels, grad_biases
