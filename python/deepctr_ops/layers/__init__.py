"""Keras layers of deepctr-ops."""

from .sequence import (
    BiasEncoding,
    BiLSTM,
    KMaxPooling,
    PositionEncoding,
    SequencePoolingLayer,
    Transformer,
    WeightedSequenceLayer,
    custom_objects,
)

__all__ = [
    "BiasEncoding",
    "BiLSTM",
    "KMaxPooling",
    "PositionEncoding",
    "SequencePoolingLayer",
    "Transformer",
    "WeightedSequenceLayer",
    "custom_objects",
]
