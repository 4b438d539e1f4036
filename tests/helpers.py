"""Test helpers: DeepCTR oracle calls, gradients, ragged length generators, saving."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def ragged_lengths(rng: np.random.Generator, batch: int, time: int) -> np.ndarray:
    """Lengths [batch, 1] that cover 0, 1, T, > T and negatives, plus random ones."""
    special = np.array([0, 1, time, time + 3, -2], dtype=np.int64)
    lengths = rng.integers(0, time + 1, size=batch)
    lengths[: min(batch, len(special))] = special[: min(batch, len(special))]
    return lengths.reshape(batch, 1)


def value_and_input_grads(fn, inputs: list, differentiate: tuple[int, ...] = (0,),
                          upstream_seed: int = 7):
    """fn(inputs) and d(sum(fn * upstream))/d inputs[i] for i in differentiate."""
    tensors = [tf.convert_to_tensor(x) for x in inputs]
    with tf.GradientTape() as tape:
        for i in differentiate:
            tape.watch(tensors[i])
        out = fn(tensors)
        upstream = tf.constant(
            np.random.default_rng(upstream_seed).standard_normal(out.shape.as_list()),
            dtype=out.dtype)
        loss = tf.reduce_sum(out * upstream)
    grads = tape.gradient(loss, [tensors[i] for i in differentiate])
    return out.numpy(), [g.numpy() if g is not None else None for g in grads]


def check_sequence_and_final_gradients(run, inputs: list, delta: float = 1e-6,
                                       rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """float64 tf.test.compute_gradient of run(*tensors) -> (outputs, final_state),
    the two flattened into one vector: the theoretical Jacobian (the op's
    gradient) against the numerical one, for every input."""

    def fn(*tensors):
        outputs, final = run(*tensors)
        return tf.concat([tf.reshape(outputs, [-1]), tf.reshape(final, [-1])], 0)

    theoretical, numerical = tf.test.compute_gradient(fn, [tf.constant(v) for v in inputs],
                                                      delta=delta)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=rtol, atol=atol)


def run_recording_outputs(build, feed: np.ndarray, op_type: str):
    """Runs build(x) in a TF1 graph (x a placeholder fed `feed`) with a full
    trace; returns the fetched values and the output slots that the one node of
    `op_type` produced (the executor's record of what the kernel set)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.as_dtype(feed.dtype), feed.shape)
        fetches = build(x)
        (node,) = [op.name for op in graph.get_operations() if op.type == op_type]
        with tf.compat.v1.Session(graph=graph) as session:
            metadata = tf.compat.v1.RunMetadata()
            options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
            values = session.run(fetches, {x: feed}, options=options, run_metadata=metadata)
    slots = {out.slot for dev in metadata.step_stats.dev_stats for stats in dev.node_stats
             if stats.node_name == node for out in stats.output}
    return values, slots


def gates_saved_only_for_a_gradient(run, x: np.ndarray, op_type: str):
    """run(x) -> (outputs, final) of one dynamic GRU op of `op_type`, in a graph
    without a gradient and in one that also takes d sum(outputs**2) / dx.
    Checks that the op sets its gates output (slot 2) only in the second, and
    returns the first graph's (outputs, final) and the second's."""
    def build(with_gradient):
        def fetches(xt):
            outputs, final = run(xt)
            if not with_gradient:
                return [outputs, final]
            return [outputs, final, tf.gradients(tf.reduce_sum(outputs ** 2), xt)[0]]
        return fetches

    inference, slots = run_recording_outputs(build(False), x, op_type)
    assert slots == {0, 1}
    training, slots = run_recording_outputs(build(True), x, op_type)
    assert slots == {0, 1, 2}
    return inference, training[:2]


def save_formats() -> list[str]:
    """The active Keras's model formats: .keras (Keras 3); .h5 and SavedModel (tf_keras)."""
    from deepctr_ops.compat import IS_KERAS_3

    return ["keras"] if IS_KERAS_3 else ["h5", "tf"]


def save_and_load(model, fmt: str, directory):
    """Saves `model` in `fmt` (see save_formats) under `directory`; loads it back
    with the package's custom_objects."""
    from deepctr_ops import custom_objects
    from deepctr_ops.compat import keras

    name = {"keras": "model.keras", "h5": "model.h5", "tf": "saved_model"}[fmt]
    path = os.path.join(directory, name)
    if fmt == "tf":
        model.save(path, save_format="tf")
    else:
        model.save(path)
    return keras.models.load_model(path, custom_objects=custom_objects)


def penalty_and_hvp(call, x, weights, direction, variables=()) -> list:
    """For loss = sum(weights * call(x)**2) and g = d loss / dx: the gradient of
    the penalty sum(g**2) w.r.t. x (and `variables`), then the Hessian-vector
    product d sum(g * direction) / dx. Second order through the ops' gradients."""
    xt = tf.constant(x)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(xt)
        with tf.GradientTape() as inner:
            inner.watch(xt)
            loss = tf.reduce_sum(weights * call(xt) ** 2)
        g = inner.gradient(loss, xt)
        penalty = tf.reduce_sum(g ** 2)
        directional = tf.reduce_sum(g * direction)
    grads = outer.gradient(penalty, [xt, *variables])
    return [t.numpy() for t in grads] + [outer.gradient(directional, xt).numpy()]


def on_op_and_twin(fn, *args, **kwargs) -> list:
    """[fn(...) on the custom ops, fn(...) on the composite twins]."""
    import deepctr_ops

    results = []
    for impl in ("op", "tf"):
        deepctr_ops.set_implementation(impl)
        try:
            results.append(fn(*args, **kwargs))
        finally:
            deepctr_ops.set_implementation("op")
    return results
