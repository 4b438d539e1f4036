"""The DeepCTR sequence layers (`deepctr.layers.sequence`), same signatures.

Load DeepCTR models with ``custom_objects=deepctr_ops.layers.sequence.custom_objects``.
"""

from __future__ import annotations

from .pooling import SequencePoolingLayer, WeightedSequenceLayer

custom_objects = {
    "SequencePoolingLayer": SequencePoolingLayer,
    "WeightedSequenceLayer": WeightedSequenceLayer,
}

__all__ = ["SequencePoolingLayer", "WeightedSequenceLayer", "custom_objects"]
