"""Length-aware GRU / AGRU / AUGRU (DeepCTR's DynamicGRU, DIEN) as one fused op.

`dynamic_gru(x [B,T,E], lengths [B] or [B,1], weights, att_scores=None, cell=...,
reverse=False)` returns `(outputs [B,T,U], final_state [B,U])`. With
`[r | z] = sigmoid([x_t, h] Wg + bg)` (reset half first) and
`c = tanh([x_t, r * h] Wc + bc)` the new state is

* GRU (and AIGRU, a GRU on attended inputs): `z * h + (1 - z) * c`;
* AGRU:  `(1 - a) * h + a * c` (a = att_scores[:, t]; z unused);
* AUGRU: `z~ * h + (1 - z~) * c` with `z~ = (1 - a) * z`.

Each row runs `len = clamp(lengths, 0, T)` steps from a zero state (float lengths
truncate, as in DeepCTR's int32 cast); outputs at `t >= len` are 0, and
final_state is the state after step len-1 (0 for len 0). Padded steps are never
read. `reverse=True` runs each row from len-1 down to 0 and writes the outputs
at their original positions (a backward GRU over ragged histories).

The custom op `DeepCTR>DynamicGru` loops over time inside the kernel (one GEMM
projects every valid step's input; the recurrence runs only over rows still
inside their length) and saves the gate activations; `DeepCTR>DynamicGruGrad`
is its BPTT, with gradients for x, att_scores and all four weights. It has no
gradient itself (second order raises a LookupError naming the op). float32 and float64 run
the op; float16 and bfloat16 are computed in float32 (state and accumulation)
and rounded at the end. The pure-TF composite twin (`tf.scan` over T with the
same math) is used under XLA and with `set_implementation("tf")`.
"""

from __future__ import annotations

import tensorflow as tf

from .. import _implementation, _loader
from .pooling import _flat_lengths, mask_lengths

CELLS = ("GRU", "AIGRU", "AGRU", "AUGRU")
_OP_DTYPES = (tf.float32, tf.float64)
_HALF_TYPES = (tf.float16, tf.bfloat16)


def op_cell(gru_type: str) -> str:
    """The op's `cell` attr for a DeepCTR gru_type (AIGRU is a plain GRU)."""
    if gru_type not in CELLS:
        raise ValueError(f"gru_type must be one of {CELLS}, got {gru_type!r}")
    return "GRU" if gru_type in ("GRU", "AIGRU") else gru_type


def _check_dim(name: str, shape: tf.TensorShape, axis: int, want, what: str) -> None:
    got = shape[axis]
    if got is not None and want is not None and got != want:
        raise ValueError(f"{name} must have shape {what}, got {shape}")


def _check_inputs(x, att_scores, wg, bg, wc, bc, cell):
    if x.shape.rank is not None and x.shape.rank != 3:
        raise ValueError(f"x must have shape [batch, T, E], got {x.shape}")
    for name, w, rank in (("wg (gates kernel)", wg, 2), ("bg (gates bias)", bg, 1),
                          ("wc (candidate kernel)", wc, 2), ("bc (candidate bias)", bc, 1)):
        if w.shape.rank is not None and w.shape.rank != rank:
            raise ValueError(f"{name} must have rank {rank}, got shape {w.shape}")
    units = wc.shape[1] if wc.shape.rank == 2 else None
    e = x.shape[2] if x.shape.rank == 3 else None
    rows = e + units if e is not None and units is not None else None
    wc_want = f"[E + units, units] = [{rows}, {units}]"
    _check_dim("wc (candidate kernel)", wc.shape, 0, rows, wc_want)
    two = 2 * units if units is not None else None
    if wg.shape.rank == 2:
        wg_want = f"[E + units, 2 * units] = [{rows}, {two}]"
        _check_dim("wg (gates kernel)", wg.shape, 0, rows, wg_want)
        _check_dim("wg (gates kernel)", wg.shape, 1, two, wg_want)
    if bg.shape.rank == 1:
        _check_dim("bg (gates bias)", bg.shape, 0, two, f"[2 * units] = [{two}]")
    if bc.shape.rank == 1:
        _check_dim("bc (candidate bias)", bc.shape, 0, units, f"[units] = [{units}]")
    if cell == "GRU":
        if att_scores is not None:
            raise ValueError("att_scores must be None for gru_type GRU/AIGRU (a plain GRU takes "
                             "no attention scores)")
        return
    if att_scores is None:
        raise ValueError(f"att_scores [batch, T, 1] are required for gru_type {cell}")
    shape = att_scores.shape
    want = "[batch, T] or [batch, T, 1] matching x"
    if shape.rank is not None:
        if shape.rank not in (2, 3) or (shape.rank == 3 and shape[2] not in (None, 1)):
            raise ValueError(f"att_scores must have shape {want} {x.shape}, got {shape}")
        if x.shape.rank == 3:
            for axis in (0, 1):
                _check_dim("att_scores", shape, axis, x.shape[axis], f"{want} {x.shape}")


def _to_float32(t):
    """float16/bfloat16 inputs run the ops in float32 (None stays None)."""
    return None if t is None else tf.cast(t, tf.float32)


@tf.autograph.experimental.do_not_convert
def dynamic_gru(x, lengths, wg, bg, wc, bc, att_scores=None, cell: str = "GRU",
                reverse: bool = False, name: str | None = None):
    """Runs the length-aware GRU; returns (outputs [B,T,U], final_state [B,U]).

    cell: "GRU", "AIGRU" (the same op), "AGRU" or "AUGRU"; att_scores [B,T,1] or
    [B,T] is required for AGRU/AUGRU and must be None otherwise. Weights in
    DeepCTR's layout: wg [E+U, 2U], bg [2U], wc [E+U, U], bc [U].
    """
    cell = op_cell(cell)
    with tf.name_scope(name or "dynamic_gru"):
        x = tf.convert_to_tensor(x)
        wg, bg, wc, bc = (tf.convert_to_tensor(w, dtype=x.dtype) for w in (wg, bg, wc, bc))
        if att_scores is not None:
            att_scores = tf.convert_to_tensor(att_scores, dtype=x.dtype)
        _check_inputs(x, att_scores, wg, bg, wc, bc, cell)
        lengths = _flat_lengths(mask_lengths(lengths))
        dtype = x.dtype
        if dtype in _HALF_TYPES:
            up = _to_float32
            outputs, final = dynamic_gru(up(x), lengths, up(wg), up(bg), up(wc), up(bc),
                                         up(att_scores), cell, reverse)
            return tf.cast(outputs, dtype), tf.cast(final, dtype)
        if _implementation.use_custom_op() and dtype in _OP_DTYPES:
            att = att_scores if att_scores is not None else tf.zeros([0], dtype)
            result = _loader.load().DeepCTR_DynamicGru(
                x=x, lengths=lengths, att_scores=att, wg=wg, bg=bg, wc=wc, bc=bc, cell=cell,
                reverse=bool(reverse))
            return result.outputs, result.final_state
        return _dynamic_gru_twin(x, lengths, wg, bg, wc, bc, att_scores, cell, bool(reverse))


@tf.autograph.experimental.do_not_convert
def bidirectional_dynamic_gru(x, lengths, forward_weights, backward_weights, att_scores=None,
                              cell: str = "GRU", name: str | None = None):
    """A forward and a reverse dynamic GRU over the same inputs, concatenated:
    returns (outputs [B,T,2U], final_state [B,2U]), the forward direction's U
    columns first. Equal to concatenating `dynamic_gru(..., reverse=False)`
    and `dynamic_gru(..., reverse=True)` with the two weight lists
    ([wg, bg, wc, bc] each), but one op (`DeepCTR>BidirectionalDynamicGru`)
    writes the concat layout itself, so no concat op follows it and none
    splits its gradient.
    """
    cell = op_cell(cell)
    with tf.name_scope(name or "bidirectional_dynamic_gru"):
        x = tf.convert_to_tensor(x)
        fw = [tf.convert_to_tensor(w, dtype=x.dtype) for w in forward_weights]
        bw = [tf.convert_to_tensor(w, dtype=x.dtype) for w in backward_weights]
        if att_scores is not None:
            att_scores = tf.convert_to_tensor(att_scores, dtype=x.dtype)
        _check_inputs(x, att_scores, *fw, cell)
        _check_inputs(x, att_scores, *bw, cell)
        dtype = x.dtype
        if dtype in _HALF_TYPES:  # float32 inside, as dynamic_gru.
            up = _to_float32
            outputs, final = bidirectional_dynamic_gru(
                up(x), lengths, [up(w) for w in fw], [up(w) for w in bw], up(att_scores), cell)
            return tf.cast(outputs, dtype), tf.cast(final, dtype)
        if not (_implementation.use_custom_op() and dtype in _OP_DTYPES):
            # The composite twin (XLA, set_implementation("tf")): two directions.
            directions = [dynamic_gru(x, lengths, *w, att_scores=att_scores, cell=cell,
                                      reverse=reverse)
                          for w, reverse in ((fw, False), (bw, True))]
            return (tf.concat([directions[0][0], directions[1][0]], -1),
                    tf.concat([directions[0][1], directions[1][1]], -1))
        lengths = _flat_lengths(mask_lengths(lengths))
        wg, bg, wc, bc = (tf.stack([f, b]) for f, b in zip(fw, bw))
        att = att_scores if att_scores is not None else tf.zeros([0], dtype)
        result = _loader.load().DeepCTR_BidirectionalDynamicGru(
            x=x, lengths=lengths, att_scores=att, wg=wg, bg=bg, wc=wc, bc=bc, cell=cell)
        return result.outputs, result.final_state


# ---- composite twin (stock TF ops, the same math) ----------------------------


def _dynamic_gru_twin(x, lengths, wg, bg, wc, bc, att_scores, cell, reverse):
    time = tf.shape(x)[1]
    lengths = tf.clip_by_value(tf.cast(lengths, tf.int32), 0, time)
    att = None
    if att_scores is not None:
        att = tf.reshape(att_scores, tf.shape(x)[:2])
    # Padded steps are never read, as in the kernels: a NaN there must not
    # reach the gradients through the discarded branch of the tf.where below.
    valid_steps = tf.sequence_mask(lengths, time)
    x = tf.where(valid_steps[:, :, tf.newaxis], x, tf.zeros_like(x))
    if att is not None:
        att = tf.where(valid_steps, att, tf.zeros_like(att))
    if reverse:
        # Each row's valid prefix reversed in place: a forward run over it is
        # the reverse run; the outputs are flipped back the same way.
        x = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        if att is not None:
            att = tf.reverse_sequence(att, lengths, seq_axis=1, batch_axis=0)
    units = tf.shape(wc)[1]
    e = tf.shape(x)[2]
    wg_x, wg_h = wg[:e], wg[e:]
    wc_x, wc_h = wc[:e], wc[e:]
    batch = tf.shape(x)[0]
    steps = tf.range(time)
    x_tm = tf.transpose(x, [1, 0, 2])
    att_tm = tf.transpose(att) if att is not None else tf.zeros([time, 0], x.dtype)

    def step(carry, inputs):
        h, _ = carry
        t, x_t, a_t = inputs
        gates = tf.sigmoid(tf.matmul(x_t, wg_x) + tf.matmul(h, wg_h) + bg)
        r, z = gates[:, :units], gates[:, units:]
        c = tf.tanh(tf.matmul(x_t, wc_x) + tf.matmul(r * h, wc_h) + bc)
        if cell == "GRU":
            new_h = z * h + (1 - z) * c
        elif cell == "AGRU":
            a = a_t[:, tf.newaxis]
            new_h = (1 - a) * h + a * c
        else:
            zz = (1 - a_t[:, tf.newaxis]) * z
            new_h = zz * h + (1 - zz) * c
        valid = (t < lengths)[:, tf.newaxis]
        h = tf.where(valid, new_h, h)
        return h, tf.where(valid, new_h, tf.zeros_like(new_h))

    h0 = tf.zeros(tf.stack([batch, units]), x.dtype)
    states, outs = tf.scan(step, (steps, x_tm, att_tm), initializer=(h0, h0))
    outputs = tf.transpose(outs, [1, 0, 2])
    final = tf.cond(time > 0, lambda: states[-1], lambda: h0)
    if reverse:
        outputs = tf.reverse_sequence(outputs, lengths, seq_axis=1, batch_axis=0)
    return outputs, final


# ---- gradient: the C++ BPTT op, registered once at import --------------------


def _is_tape_zeros(grad) -> bool:
    """True for None and for a graph gradient that is zeros (Fill, Const, ZerosLike)
    (what GradientTape and tf.gradients give an op output the loss does not
    use). An eager tensor is never inspected: that would read it."""
    if grad is None:
        return True
    op = getattr(grad, "op", None)
    if op is None or tf.executing_eagerly():
        return False
    if op.type == "ZerosLike":
        return True
    if op.type in ("Fill", "Const"):  # tf.zeros: Fill, or Const when small.
        value = tf.get_static_value(op.inputs[1] if op.type == "Fill" else grad)
        return value is not None and not value.any()
    return False


def _bptt(grad_op, op, grad_outputs, grad_final, **attrs):
    """Calls the BPTT op `grad_op` for the forward op `op`; returns the
    gradients of op's seven inputs."""
    x, lengths, att, wg, _bg, wc, _bc = op.inputs
    outputs, final, gates = op.outputs
    # An unused output's gradient goes in as [0] (zero), so that a model that
    # keeps only the final state (return_sequence=False) neither fills nor
    # reads [B, T, U] zeros. The tape hands such a gradient over as zeros it
    # built itself (a Fill of 0, which then has no consumer and is pruned).
    if _is_tape_zeros(grad_outputs):
        grad_outputs = tf.zeros([0], outputs.dtype)
    if _is_tape_zeros(grad_final):
        grad_final = tf.zeros([0], final.dtype)
    cell = op.get_attr("cell")
    if isinstance(cell, bytes):
        cell = cell.decode()
    grads = grad_op(x=x, lengths=lengths, att_scores=att, wg=wg, wc=wc, outputs=outputs,
                    gates=gates, grad_outputs=grad_outputs, grad_final_state=grad_final,
                    cell=cell, **attrs)
    grad_att = grads.grad_att_scores if cell != "GRU" else None
    return [grads.grad_x, None, grad_att, grads.grad_wg, grads.grad_bg, grads.grad_wc,
            grads.grad_bc]


@tf.RegisterGradient("DeepCTR>DynamicGru")
def _dynamic_gru_grad(op, grad_outputs, grad_final, _grad_gates=None):
    return _bptt(_loader.load().DeepCTR_DynamicGruGrad, op, grad_outputs, grad_final,
                 reverse=op.get_attr("reverse"))


@tf.RegisterGradient("DeepCTR>BidirectionalDynamicGru")
def _bidirectional_dynamic_gru_grad(op, grad_outputs, grad_final, _grad_gates=None):
    return _bptt(_loader.load().DeepCTR_BidirectionalDynamicGruGrad, op, grad_outputs,
                 grad_final)


@tf.RegisterGradient("DeepCTR>DynamicGruGrad")
@tf.RegisterGradient("DeepCTR>BidirectionalDynamicGruGrad")
def _dynamic_gru_grad_grad(op, *grads):
    """Second order is not implemented: say so, naming the op (rather than a
    silent zero, which tf.no_gradient would give)."""
    raise LookupError(
        f"second-order gradients of {op.type} (the dynamic GRU's BPTT op) are not "
        "implemented; use deepctr_ops.set_implementation('tf') for higher-order gradients")
