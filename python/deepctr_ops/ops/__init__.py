"""Python wrappers of the deepctr-ops custom ops, one module per op family."""

from .pooling import masked_sequence_pool, ragged_sequence_pool, sequence_pool

__all__ = ["masked_sequence_pool", "ragged_sequence_pool", "sequence_pool"]
