"""Benchmark case of BiLSTM (DSIN-sized session interest extractor)."""

from __future__ import annotations

import numpy as np

from .runner import Case


class _OneInput:
    """Calls a single-input layer with the runner's input list; exposes its weights."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, xs):
        return self.layer(xs[0])

    @property
    def trainable_variables(self):
        return self.layer.trainable_variables


def _bilstm_case(batch: int, time: int, emb: int) -> Case:
    def make_inputs(rng: np.random.Generator) -> list:
        return [rng.standard_normal((batch, time, emb), dtype=np.float32)]

    def ours():
        from ..layers.sequence import BiLSTM

        return _OneInput(BiLSTM(emb, layers=2, res_layers=0, dropout_rate=0.2))

    def deepctr():
        from deepctr.layers.sequence import BiLSTM

        return _OneInput(BiLSTM(emb, layers=2, res_layers=0, dropout_rate=0.2))

    return Case(
        name=f"BiLSTM B{batch} T{time} E{emb} 2 levels ave",
        make_inputs=make_inputs,
        layers={"deepctr_ops": ours, "deepctr": deepctr},
    )


def cases() -> list[Case]:
    return [_bilstm_case(256, 50, 32)]
