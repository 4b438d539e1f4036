"""A DIN-style model on deepctr-ops layers, trained a few steps under a
tf.distribute strategy with a custom loop (the same code in both Keras modes).

Run as a worker by tests/distributed/test_strategies.py:

    python din_training.py STRATEGY OUT.npz [STEPS]

STRATEGY: "multiworker" (TF_CONFIG in the environment), "mirrored2" (two
logical CPU devices in one process) or "single" (no strategy: the reference).
Writes the loss per step and the final weights to OUT.npz.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH, T, VOCAB, EMB = 64, 8, 50, 8


def make_strategy(kind: str) -> tf.distribute.Strategy:
    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored2":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return tf.distribute.get_strategy()  # The default (no) strategy.


def synthetic_data(steps: int):
    """Click logs with behaviour sequences: the label depends on whether the
    candidate item appears in the history, so the model can learn it."""
    rng = np.random.default_rng(7)
    n = GLOBAL_BATCH * steps
    # At least one step: an empty row max-pools to -1e9 (DeepCTR), which a dense
    # layer turns into exploding updates.
    lengths = rng.integers(1, T + 1, size=(n, 1)).astype(np.int32)
    history = rng.integers(1, VOCAB, size=(n, T)).astype(np.int32)
    history[np.arange(T)[None, :] >= lengths] = 0
    candidate = rng.integers(1, VOCAB, size=(n, 1)).astype(np.int32)
    clicked = ((history == candidate).any(axis=1, keepdims=True)
               | (rng.random((n, 1)) < 0.1)).astype(np.float32)
    return candidate, history, lengths, clicked


def build_model():
    from deepctr_ops.compat import keras
    from deepctr_ops.layers.sequence import SequencePoolingLayer

    candidate = keras.Input(shape=(1,), dtype="int32")
    history = keras.Input(shape=(T,), dtype="int32")
    lengths = keras.Input(shape=(1,), dtype="int32")
    embedding = keras.layers.Embedding(
        VOCAB, EMB, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=1))
    query = embedding(candidate)                        # (B, 1, E)
    keys = embedding(history)                           # (B, T, E)
    interest = SequencePoolingLayer("mean")([keys, lengths])
    peak = SequencePoolingLayer("max")([keys, lengths])
    merged = keras.layers.Flatten()(keras.layers.Concatenate()([query, interest, peak,
                                                                query * interest]))
    hidden = keras.layers.Dense(16, activation="relu",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=2))(merged)
    out = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed=3))(hidden)
    return keras.Model([candidate, history, lengths], out)


def train(kind: str, out_path: str, steps: int) -> None:
    strategy = make_strategy(kind)
    import deepctr_ops  # noqa: F401  (after the logical devices are configured)
    from deepctr_ops.compat import keras

    with strategy.scope():
        model = build_model()
        optimizer = keras.optimizers.SGD(0.5)

    candidate, history, lengths, clicked = synthetic_data(steps)
    dataset = tf.data.Dataset.from_tensor_slices(((candidate, history, lengths), clicked))
    dataset = dataset.batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    def step(inputs, labels):
        with tf.GradientTape() as tape:
            logits = model(list(inputs), training=True)
            per_example = tf.nn.sigmoid_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_sum(per_example) / GLOBAL_BATCH
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def distributed_step(inputs, labels):
        losses = strategy.run(step, args=(inputs, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    losses = [float(distributed_step(inputs, labels)) for inputs, labels in dataset]
    weights = {f"w{i}": v.numpy() for i, v in enumerate(model.trainable_variables)}
    np.savez(out_path, losses=np.array(losses), **weights)
    print(f"{kind}: {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    train(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 12)
