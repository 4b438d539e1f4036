"""Keras layers of deepctr-ops."""

from .sequence import (
    BiasEncoding,
    KMaxPooling,
    PositionEncoding,
    SequencePoolingLayer,
    Transformer,
    WeightedSequenceLayer,
    custom_objects,
)

__all__ = [
    "BiasEncoding",
    "KMaxPooling",
    "PositionEncoding",
    "SequencePoolingLayer",
    "Transformer",
    "WeightedSequenceLayer",
    "custom_objects",
]
