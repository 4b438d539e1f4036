"""Keras layers of deepctr-ops."""

from .sequence import SequencePoolingLayer, WeightedSequenceLayer, custom_objects

__all__ = ["SequencePoolingLayer", "WeightedSequenceLayer", "custom_objects"]
