"""The DeepCTR sequence layers (`deepctr.layers.sequence`), same signatures.

Load DeepCTR models with ``custom_objects=deepctr_ops.layers.sequence.custom_objects``.
"""

from __future__ import annotations

from .attention_pooling import AttentionSequencePoolingLayer
from .bias_encoding import BiasEncoding
from .bilstm import BiLSTM
from .dynamic_gru import BidirectionalDynamicGRU, DynamicGRU
from .embedding_pooling import EmbeddingSequencePooling
from .kmax_pooling import KMaxPooling
from .pooling import SequencePoolingLayer, WeightedSequenceLayer
from .position_encoding import PositionEncoding
from .transformer import Transformer

custom_objects = {
    "SequencePoolingLayer": SequencePoolingLayer,
    "WeightedSequenceLayer": WeightedSequenceLayer,
    "BiLSTM": BiLSTM,
    "Transformer": Transformer,
    "KMaxPooling": KMaxPooling,
    "PositionEncoding": PositionEncoding,
    "BiasEncoding": BiasEncoding,
    "AttentionSequencePoolingLayer": AttentionSequencePoolingLayer,
    "DynamicGRU": DynamicGRU,
    "BidirectionalDynamicGRU": BidirectionalDynamicGRU,
    "EmbeddingSequencePooling": EmbeddingSequencePooling,
}

__all__ = [
    "AttentionSequencePoolingLayer",
    "BiasEncoding",
    "BidirectionalDynamicGRU",
    "BiLSTM",
    "DynamicGRU",
    "EmbeddingSequencePooling",
    "KMaxPooling",
    "PositionEncoding",
    "SequencePoolingLayer",
    "Transformer",
    "WeightedSequenceLayer",
    "custom_objects",
]
