"""Benchmark cases of AttentionSequencePoolingLayer (DIN), lengths uniform in [0, T]."""

from __future__ import annotations

import numpy as np

from .runner import Case


def _din_case(batch: int, time: int, emb: int, units: tuple[int, ...],
              normalize: bool) -> Case:
    def make_inputs(rng: np.random.Generator) -> list:
        query = rng.standard_normal((batch, 1, emb), dtype=np.float32)
        keys = rng.standard_normal((batch, time, emb), dtype=np.float32)
        lengths = rng.integers(0, time + 1, size=(batch, 1)).astype(np.int32)
        return [query, keys, lengths]

    def ours():
        from ..layers.sequence import AttentionSequencePoolingLayer

        return AttentionSequencePoolingLayer(units, weight_normalization=normalize)

    def deepctr():
        from deepctr.layers.sequence import AttentionSequencePoolingLayer

        return AttentionSequencePoolingLayer(units, weight_normalization=normalize)

    hidden = ",".join(str(u) for u in units)
    return Case(
        name=f"DIN attention B{batch} T{time} E{emb} ({hidden}) "
             f"norm={'on' if normalize else 'off'} len~U[0,T]",
        make_inputs=make_inputs,
        layers={"deepctr_ops": ours, "deepctr": deepctr, "twin": ours},
        differentiate=(0, 1),
    )


def cases() -> list[Case]:
    return [_din_case(1024, 50, 32, (80, 40), False), _din_case(1024, 50, 32, (80, 40), True),
            _din_case(1024, 100, 64, (64, 16), False), _din_case(1024, 100, 64, (64, 16), True)]
