"""Benchmark cases of EmbeddingSequencePooling: ids in, pooled vectors out.

One [V,E] table variable, shared by every implementation of every row (so the
table is built once), and ids as DeepCTR feeds them: lengths uniform in [0, T],
ids in [1, V) within the length and 0 in the padding. Forward+backward takes
the gradient with respect to the table variable (a tf.IndexedSlices for every
implementation, never densified). Implementations:

* deepctr_ops: EmbeddingSequencePooling([ids, seq_len]) (the fused op).
* deepctr: Keras' Embedding(mask_zero=True), then DeepCTR's
  SequencePoolingLayer(supports_masking=True), as DeepCTR's models build it.
* embedding_lookup_sparse: tf.nn.embedding_lookup_sparse on a SparseTensor of
  the valid steps, built outside the timed region (sum and mean only: it has
  no max); its output is padded back to B rows (it drops trailing empty rows).
* unfused: this package without the fusion: tf.gather of the table rows, then
  deepctr_ops' SequencePoolingLayer([values, seq_len]).
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from .runner import Case


def _tf_variable(variable) -> tf.Variable:
    """A Keras 3 variable's tf.Variable (tf_keras' already is one)."""
    value = getattr(variable, "value", None)
    return variable if isinstance(variable, tf.Variable) else value


@functools.cache
def _shared_embedding(vocab: int, emb: int):
    """The one Keras Embedding(mask_zero=True) whose table every row reads."""
    from ..compat import keras

    layer = keras.layers.Embedding(
        vocab, emb, mask_zero=True,
        embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=0))
    layer.build((None, None))
    return layer


class _TableCallable:
    """A callable `inputs -> [B,1,E]` with the table as its trainable variable."""

    def __init__(self, fn, variable):
        self.fn = fn
        self.variable = variable

    def __call__(self, xs):
        return self.fn(xs)

    @property
    def trainable_variables(self):
        return [self.variable]


def _embedding_pool_case(mode: str, vocab: int, batch: int, time: int, emb: int) -> Case:
    def make_inputs(rng: np.random.Generator) -> list:
        lengths = rng.integers(0, time + 1, size=(batch, 1)).astype(np.int32)
        ids = rng.integers(1, vocab, size=(batch, time)).astype(np.int32)
        valid = np.arange(time)[None, :] < lengths
        ids[~valid] = 0
        rows, steps = np.nonzero(valid)
        sparse_ids = tf.SparseTensor(np.stack([rows, steps], 1).astype(np.int64),
                                     ids[valid].astype(np.int64), [batch, time])
        return [ids, lengths, sparse_ids]

    def fused():
        from ..layers.embedding_pooling import EmbeddingSequencePooling

        layer = EmbeddingSequencePooling(vocab, emb, mode,
                                         table=_shared_embedding(vocab, emb))
        return _TableCallable(lambda xs: layer([xs[0], xs[1]]), layer.embeddings)

    def deepctr():
        from deepctr.layers.sequence import SequencePoolingLayer

        embedding = _shared_embedding(vocab, emb)
        pool = SequencePoolingLayer(mode, supports_masking=True)
        return _TableCallable(lambda xs: pool(embedding(xs[0]), mask=embedding.compute_mask(xs[0])),
                      embedding.embeddings)

    def lookup_sparse():
        table = _tf_variable(_shared_embedding(vocab, emb).embeddings)

        def fn(xs):
            out = tf.nn.embedding_lookup_sparse(table, xs[2], None, combiner=mode)
            out = tf.pad(out, [[0, batch - tf.shape(out)[0]], [0, 0]])
            return out[:, tf.newaxis, :]

        return _TableCallable(fn, table)

    def unfused():
        from ..layers.pooling import SequencePoolingLayer

        table = _tf_variable(_shared_embedding(vocab, emb).embeddings)
        pool = SequencePoolingLayer(mode)
        return _TableCallable(lambda xs: pool([tf.gather(table, xs[0]), xs[1]]), table)

    layers = {"deepctr_ops": fused, "deepctr": deepctr}
    if mode != "max":
        layers["embedding_lookup_sparse"] = lookup_sparse
    layers["unfused"] = unfused
    return Case(
        name=f"EmbeddingPooling {mode} V{vocab} B{batch} T{time} E{emb} len~U[0,T]",
        make_inputs=make_inputs,
        layers=layers,
        differentiate=(),
    )


def cases() -> list[Case]:
    return [_embedding_pool_case(mode, 1_000_000, 4096, 50, 64)
            for mode in ("sum", "mean", "max")]
