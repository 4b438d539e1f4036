"""EmbeddingSequencePooling: Keras' `Embedding` + DeepCTR's `SequencePoolingLayer`
(and `WeightedSequenceLayer`) in one layer, on the fused
`DeepCTR>EmbeddingSequencePool` ops. DeepCTR has no such layer, so
`patch_deepctr` does not swap anything for it."""

from __future__ import annotations

import tensorflow as tf

from ..compat import IS_KERAS_3, keras, register_serializable
from ..ops import embedding_pool as emb_ops
from ..ops import pooling as pool_ops
from ._shapes import is_shape
from ._sublayers import build_sublayer
from .pooling import _CustomOpLayer


@register_serializable
class EmbeddingSequencePooling(_CustomOpLayer):
    """Looks up a sequence of ids and pools it, never building ``(batch_size, T, E)``.

    Equals ``Embedding(input_dim, output_dim, mask_zero=mask_zero)`` followed by
    DeepCTR's ``SequencePoolingLayer(mode)`` (``WeightedSequenceLayer`` first
    when weights are given), with the same table.

    Input shape
      - ``ids``: 2D int tensor with shape ``(batch_size, T)``; or a
        ``tf.RaggedTensor`` of shape ``(batch_size, None)`` (no padding).
      - ``[ids, seq_len]``: seq_len is a 2D tensor with shape ``(batch_size, 1)``,
        the valid length of each sequence (DeepCTR's ``supports_masking=False``).
      - ``[ids, seq_len, seq_weight]``: seq_weight has shape ``(batch_size, T, 1)``
        (or ``(batch_size, T)``), DeepCTR's weighted sequence feature.
      - Keywords instead of the list: ``lengths=``, ``weights=``, ``mask=`` (a
        bool ``(batch_size, T)`` Keras mask, any pattern).
      - ``ids`` alone uses every step; with ``mask_zero=True`` steps whose id
        is 0 are padding (DeepCTR's ``supports_masking=True`` mode). mask_zero
        also applies with seq_len or a mask (the two are ANDed).

    Output shape
      - 3D tensor with shape: ``(batch_size, 1, output_dim)``. No Keras mask (the
        mask is consumed by the pooling).

    Arguments
      - **input_dim**, **output_dim**, **embeddings_initializer**,
        **embeddings_regularizer**, **embeddings_constraint**, **mask_zero**:
        as ``keras.layers.Embedding``. The weight is ``embeddings`` with shape
        ``(input_dim, output_dim)``, so ``set_weights(embedding.get_weights())``
        loads an Embedding's table.
      - **mode**: str. Pooling operation, one of sum, mean or max.
      - **weight_normalization**: bool. With weights: softmax them over the
        valid steps first (as ``WeightedSequenceLayer``/``VarLenSparseFeat``'s
        ``weight_norm``, default True). Ignored without weights.
      - **table**: share an existing table instead of creating one (DeepCTR
        shares tables between features with the same ``embedding_name``): a
        Keras ``Embedding`` layer (built here if it is not yet; it is tracked
        as a sub-layer, so its weight, regularizer and constraint work as they
        do for any shared layer), another ``EmbeddingSequencePooling``, or a
        variable (a ``keras.Variable`` under Keras 3, a ``tf.Variable`` under
        tf_keras). Its shape must be ``(input_dim, output_dim)``; the
        initializer/regularizer/constraint arguments are then unused. A layer
        with a shared table has no ``get_config`` (Keras cannot rebuild the
        sharing from configs): rebuild such models in code and use
        ``save_weights``/``load_weights``. Calling one layer on several
        features' ids shares its table too, and such models save normally.

    The table gradient is a ``tf.IndexedSlices`` over the pooled steps only.
    """

    def __init__(self, input_dim, output_dim, mode="mean", mask_zero=False,
                 embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, weight_normalization=True, table=None,
                 **kwargs):
        if IS_KERAS_3:
            kwargs.setdefault("autocast", False)  # As Embedding: the table is read as stored.
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.mode = pool_ops.check_mode(mode)
        self.mask_zero = bool(mask_zero)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = keras.constraints.get(embeddings_constraint)
        self.weight_normalization = bool(weight_normalization)
        self.supports_masking = True  # Accepts a Keras mask; outputs none.
        self._own_embeddings = None
        self.table_layer = None
        self.shared_embeddings = None
        if table is not None:
            self._share(table)

    # ---- the table ---------------------------------------------------------

    def _share(self, table) -> None:
        if isinstance(table, keras.layers.Layer):
            if not isinstance(table, (keras.layers.Embedding, EmbeddingSequencePooling)):
                raise ValueError(
                    "table must be an Embedding or EmbeddingSequencePooling layer or a "
                    f"variable, got layer {table.name!r} of type {type(table).__name__}")
            if table.built:
                self._check_table_shape(table.embeddings)
            else:
                self._check_table_shape_of(table.input_dim, table.output_dim)
            self.table_layer = table
            return
        if IS_KERAS_3 and not isinstance(table, keras.Variable):
            raise ValueError(
                "table must be an Embedding layer or a keras.Variable under Keras 3 (a "
                f"plain {type(table).__name__} is not tracked, so fit would not train it); "
                "got " + repr(table))
        if not IS_KERAS_3 and not isinstance(table, tf.Variable):
            raise ValueError(
                f"table must be an Embedding layer or a tf.Variable, got {type(table).__name__}")
        self._check_table_shape(table)
        self.shared_embeddings = table

    def _check_table_shape(self, variable) -> None:
        shape = tuple(variable.shape)
        if len(shape) != 2:
            self._bad_shape(shape)
        self._check_table_shape_of(*shape)

    def _check_table_shape_of(self, rows, cols) -> None:
        if (int(rows), int(cols)) != (self.input_dim, self.output_dim):
            self._bad_shape((rows, cols))

    def _bad_shape(self, shape) -> None:
        raise ValueError(f"the shared table has shape {tuple(shape)}, expected (input_dim, "
                         f"output_dim) = {(self.input_dim, self.output_dim)}")

    @property
    def shares_table(self) -> bool:
        return self.table_layer is not None or self.shared_embeddings is not None

    @property
    def embeddings(self):
        """The table this layer reads: its own weight, or the shared one."""
        if self.table_layer is not None:
            return self.table_layer.embeddings
        if self.shared_embeddings is not None:
            return self.shared_embeddings
        if self._own_embeddings is None:
            raise AttributeError("build the layer before reading its embeddings")
        return self._own_embeddings

    def build(self, input_shape=None):
        if self.table_layer is not None:
            if not self.table_layer.built:
                build_sublayer(self.table_layer, (None, None))
            self._check_table_shape(self.table_layer.embeddings)
        elif self.shared_embeddings is None and self._own_embeddings is None:
            options = {"autocast": False} if IS_KERAS_3 else {"experimental_autocast": False}
            self._own_embeddings = self.add_weight(
                shape=(self.input_dim, self.output_dim),
                initializer=self.embeddings_initializer,
                name="embeddings",
                regularizer=self.embeddings_regularizer,
                constraint=self.embeddings_constraint,
                **options,
            )
        super().build(input_shape)

    # ---- call --------------------------------------------------------------

    def call(self, inputs, lengths=None, weights=None, mask=None, **kwargs):
        ids = inputs
        if isinstance(inputs, (list, tuple)):
            if not 1 <= len(inputs) <= 3:
                raise ValueError("EmbeddingSequencePooling takes ids, [ids, seq_len] or "
                                 f"[ids, seq_len, seq_weight]; got a list of {len(inputs)}")
            ids = inputs[0]
            if len(inputs) >= 2:
                lengths = _only_once(lengths, inputs[1], "lengths")
            if len(inputs) == 3:
                weights = _only_once(weights, inputs[2], "weights")
        if isinstance(mask, (list, tuple)):  # Keras passes one mask per input.
            mask = mask[0]
        if lengths is not None and mask is not None:
            raise ValueError("EmbeddingSequencePooling takes seq_len or a mask, not both")
        pooled = emb_ops.embedding_sequence_pool(
            self.embeddings, ids, lengths=lengths, mask=mask, weights=weights,
            mode=self.mode, mask_zero=self.mask_zero,
            weight_normalization=self.weight_normalization)
        if pooled.dtype != self.compute_dtype:
            pooled = tf.cast(pooled, self.compute_dtype)
        return pooled

    def compute_output_shape(self, input_shape):
        first = input_shape if is_shape(input_shape) else input_shape[0]
        batch = tf.TensorShape(first)[0] if first is not None else None
        batch = batch if batch is None or isinstance(batch, int) else batch.value
        return (batch, 1, self.output_dim)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        if self.shares_table:
            raise NotImplementedError(
                f"{self.name} shares its table (table=...); Keras cannot rebuild that "
                "sharing from configs: rebuild the model in code and use save_weights / "
                "load_weights")
        config = {
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "mode": self.mode,
            "mask_zero": self.mask_zero,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
            "embeddings_constraint": keras.constraints.serialize(self.embeddings_constraint),
            "weight_normalization": self.weight_normalization,
        }
        return dict(list(super().get_config().items()) + list(config.items()))


def _only_once(keyword, positional, name: str):
    if keyword is not None:
        raise ValueError(f"{name} given both in the input list and as {name}=")
    return positional
