"""Python wrappers of the deepctr-ops custom ops, one module per op family.

Importing this package registers every op's C++ gradient.
"""

from .attention import attention_softmax
from .attention_pool import attention_pool
from .dynamic_gru import bidirectional_dynamic_gru, dynamic_gru
from .embedding_pool import embedding_sequence_pool
from .pooling import masked_sequence_pool, ragged_sequence_pool, sequence_pool

__all__ = [
    "attention_pool",
    "attention_softmax",
    "bidirectional_dynamic_gru",
    "dynamic_gru",
    "embedding_sequence_pool",
    "masked_sequence_pool",
    "ragged_sequence_pool",
    "sequence_pool",
]
