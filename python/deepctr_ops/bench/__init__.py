"""`deepctr-ops bench`: this package vs DeepCTR vs the composite twins, one run.

A benchmark case builds inputs and, per implementation, a callable layer. Each
is timed inside `tf.function` for the forward pass and for forward+backward
(gradients w.r.t. the differentiated inputs and the layer's trainable
weights), as the median of repeated runs after a warm-up. Ratios are DeepCTR's
median over ours, so 8.0x means eight times faster.
"""

from __future__ import annotations

from .runner import Case, Result, format_table, run_cases

__all__ = ["Case", "Result", "format_table", "run_cases"]
