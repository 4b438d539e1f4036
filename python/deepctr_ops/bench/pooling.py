"""Benchmark cases of SequencePoolingLayer."""

from __future__ import annotations

import numpy as np

from .runner import Case


def _pooling_case(mode: str, batch: int, time: int, emb: int, lengths: str) -> Case:
    def make_inputs(rng: np.random.Generator) -> list:
        values = rng.standard_normal((batch, time, emb), dtype=np.float32)
        if lengths == "uniform":
            lens = rng.integers(0, time + 1, size=(batch, 1))
        else:  # Short histories in a long padded window: mean ~20 of `time`.
            lens = np.clip(rng.poisson(20, size=(batch, 1)), 0, time)
        return [values, lens.astype(np.int32)]

    def ours():
        from ..layers.sequence import SequencePoolingLayer

        return SequencePoolingLayer(mode)

    def deepctr():
        from deepctr.layers.sequence import SequencePoolingLayer

        return SequencePoolingLayer(mode)

    label = "len~U[0,T]" if lengths == "uniform" else "len~20"
    return Case(
        name=f"SequencePooling {mode} B{batch} T{time} E{emb} {label}",
        make_inputs=make_inputs,
        layers={"deepctr_ops": ours, "deepctr": deepctr, "twin": ours},
    )


def cases() -> list[Case]:
    out = []
    for mode in ("sum", "mean", "max"):
        out.append(_pooling_case(mode, 4096, 50, 64, "uniform"))
        out.append(_pooling_case(mode, 1024, 200, 32, "short"))
    return out
