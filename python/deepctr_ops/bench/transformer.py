"""Benchmark case of Transformer (BST/DSIN-sized self-attention)."""

from __future__ import annotations

import numpy as np

from .runner import Case


def _transformer_case(batch: int, time: int, emb: int, heads: int) -> Case:
    def make_inputs(rng: np.random.Generator) -> list:
        q = rng.standard_normal((batch, time, emb), dtype=np.float32)
        k = rng.standard_normal((batch, time, emb), dtype=np.float32)
        lens = rng.integers(0, time + 1, size=(batch, 1)).astype(np.int32)
        return [q, k, lens, lens]

    def ours():
        from ..layers.sequence import Transformer

        return Transformer(emb // heads, heads, blinding=True, use_positional_encoding=True)

    def deepctr():
        from deepctr.layers.sequence import Transformer

        return Transformer(emb // heads, heads, blinding=True, use_positional_encoding=True)

    return Case(
        name=f"Transformer B{batch} T{time} E{emb} {heads}x{emb // heads} blind+PE len~U[0,T]",
        make_inputs=make_inputs,
        layers={"deepctr_ops": ours, "deepctr": deepctr, "twin": ours},
        differentiate=(0, 1),
    )


def cases() -> list[Case]:
    return [_transformer_case(512, 50, 64, 8)]
