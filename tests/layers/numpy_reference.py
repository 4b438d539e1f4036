"""Float64 NumPy statements of DeepCTR 0.9.4's math (spec sections 5-9).

Under Keras 3, DeepCTR's Transformer, PositionEncoding and BiasEncoding cannot
run, so the Keras 3 tests compare deepctr-ops with these references; the
tf_keras tests check these references against DeepCTR itself.
"""

from __future__ import annotations

import numpy as np

NEG = -(2.0**32) + 1


def position_table(length: int, units: int, zero_pad: bool = False) -> np.ndarray:
    table = np.array([[pos / np.power(10000, 2.0 * (i // 2) / units) for i in range(units)]
                      for pos in range(length)])
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    if zero_pad:
        table[0] = 0.0
    return table.astype(np.float32).astype(np.float64)


def position_encoding(x, table, scale=True):
    length, units = x.shape[1], x.shape[2]
    return x + table[None, :length] * (np.sqrt(units) if scale else 1.0)


def bias_encoding(xs, sess_bias, seq_bias, item_bias):
    return [x + item_bias + seq_bias + sess_bias[i] for i, x in enumerate(xs)]


def kmax_pooling(x, k, axis):
    moved = np.moveaxis(x, axis, -1)
    top = -np.sort(-moved, axis=-1)[..., :k]
    return np.moveaxis(top, -1, axis)


def layer_norm(x, gamma, beta, eps=1e-9):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def transformer(weights: dict, config: dict, queries, keys, query_valid, key_valid):
    """DeepCTR Transformer forward. weights: name -> array (DeepCTR names; the
    sub-layer weights as 'att_ln_q/gamma', 'ln/beta', 'query_pe', 'key_pe').
    query_valid, key_valid: bool [B, T]."""
    h, d = config["head_num"], config["att_embedding_size"]
    q_in, k_in = np.asarray(queries, np.float64), np.asarray(keys, np.float64)
    if config["use_positional_encoding"]:
        q_in = position_encoding(q_in, weights["query_pe"])
        k_in = position_encoding(k_in, weights["key_pe"])
    Q, K, V = q_in @ weights["query"], k_in @ weights["key"], k_in @ weights["value"]
    batch, tq, tk = Q.shape[0], Q.shape[1], K.shape[1]

    def heads(x):  # (B,T,h*d) -> (h,B,T,d)
        return np.transpose(x.reshape(batch, x.shape[1], h, d), (2, 0, 1, 3))

    Qh, Kh, Vh = heads(Q), heads(K), heads(V)
    kind = config["attention_type"]
    if kind == "scaled_dot_product":
        s = Qh @ np.swapaxes(Kh, -1, -2) / np.sqrt(d)
    elif kind == "cos":
        def l2n(x):
            return x / np.sqrt(np.maximum((x * x).sum(-1, keepdims=True), 1e-12))
        s = l2n(Qh) @ np.swapaxes(l2n(Kh), -1, -2) * 20
    elif kind == "ln":
        qn = layer_norm(Qh, weights["att_ln_q/gamma"], weights["att_ln_q/beta"])
        kn = layer_norm(Kh, weights["att_ln_k/gamma"], weights["att_ln_k/beta"])
        s = qn @ np.swapaxes(kn, -1, -2) / np.sqrt(d)
    else:
        pairs = np.tanh(Qh[:, :, :, None, :] + Kh[:, :, None, :, :] + weights["b"])
        s = pairs @ weights["v"]
    eligible = np.broadcast_to(key_valid[:, None, :], (batch, tq, tk)).copy()
    if config["blinding"]:
        eligible &= ~np.eye(tq, tk, dtype=bool)[None]
    s = np.where(eligible[None], s, NEG)
    a = softmax(s) * query_valid[None, :, :, None]
    r = np.transpose(a @ Vh, (1, 2, 0, 3)).reshape(batch, tq, h * d)
    if config["use_res"]:
        r = r + q_in
    if config["use_layer_norm"]:
        r = layer_norm(r, weights["ln/gamma"], weights["ln/beta"])
    if config["use_feed_forward"]:
        f = np.maximum(r @ weights["fw1"], 0) @ weights["fw2"]
        if config["use_res"]:
            r = r + f
        if config["use_layer_norm"]:
            r = layer_norm(r, weights["ln/gamma"], weights["ln/beta"])
    if config["output_type"] == "mean":
        return r.mean(1, keepdims=True)
    if config["output_type"] == "sum":
        return r.sum(1, keepdims=True)
    return r


def transformer_weight_names(config: dict) -> list[str]:
    """The names of DeepCTR's Transformer weights in its (tf_keras) order."""
    names = ["query", "key", "value"]
    if config["attention_type"] == "additive":
        names += ["b", "v"]
    if config["use_feed_forward"]:
        names += ["fw1", "fw2"]
    if config["attention_type"] == "ln":
        names += ["att_ln_q/gamma", "att_ln_q/beta", "att_ln_k/gamma", "att_ln_k/beta"]
    if config["use_layer_norm"]:
        names += ["ln/gamma", "ln/beta"]
    if config["use_positional_encoding"]:
        names += ["query_pe", "key_pe"]
    return names


def lstm(x, kernel, recurrent, bias, mask=None, go_backwards=False):
    """Keras LSTM (gates i, f, c, o), return_sequences; masked steps carry (h, c)."""
    batch, time, _ = x.shape
    units = recurrent.shape[0]
    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    out = np.zeros((batch, time, units))
    steps = range(time - 1, -1, -1) if go_backwards else range(time)
    for n, t in enumerate(steps):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4, axis=-1)
        sig = 1 / (1 + np.exp(-np.stack([i, f, o])))
        c_new = sig[1] * c + sig[0] * np.tanh(g)
        h_new = sig[2] * np.tanh(c_new)
        if mask is not None:
            m = mask[:, t][:, None]
            c_new = np.where(m, c_new, c)
            h_new = np.where(m, h_new, h)
        h, c = h_new, c_new
        out[:, n] = h
    return out


def bilstm(weights_fw, weights_bw, x, res_layers=0, merge_mode="ave", masks=None):
    """DeepCTR BiLSTM. weights_fw/bw: per level (kernel, recurrent, bias);
    masks: per level the mask the level's LSTMs see (None: unmasked)."""
    layers = len(weights_fw)
    masks = masks if masks is not None else [None] * layers
    fw_in = bw_in = np.asarray(x, np.float64)
    for i in range(layers):
        fw = lstm(fw_in, *weights_fw[i], mask=masks[i])
        bw = lstm(bw_in, *weights_bw[i], mask=masks[i], go_backwards=True)[:, ::-1]
        if i >= layers - res_layers:
            fw, bw = fw + fw_in, bw + bw_in
        fw_in, bw_in = fw, bw
    if merge_mode == "fw":
        return fw_in
    if merge_mode == "bw":
        return bw_in
    if merge_mode == "concat":
        return np.concatenate([fw_in, bw_in], -1)
    if merge_mode == "sum":
        return fw_in + bw_in
    if merge_mode == "ave":
        return (fw_in + bw_in) / 2
    if merge_mode == "mul":
        return fw_in * bw_in
    return [fw_in, bw_in]
