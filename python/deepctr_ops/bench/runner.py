"""Timing loop and report of `deepctr-ops bench`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from .._implementation import implementation

# Implementations, in report order. "twin" is deepctr_ops with
# set_implementation("tf"): the same layers on stock TF ops.
IMPLEMENTATIONS = ("deepctr_ops", "deepctr", "twin")


@dataclass
class Case:
    """One benchmark row.

    make_inputs(rng) returns the layer inputs; `differentiate` lists the input
    positions the backward pass differentiates. layers maps an implementation
    name to a factory that returns a fresh callable `inputs -> output`
    (typically a Keras layer).
    """

    name: str
    make_inputs: Callable[[np.random.Generator], list]
    layers: dict[str, Callable[[], Callable]]
    differentiate: tuple[int, ...] = (0,)


@dataclass
class Result:
    case: str
    forward_ms: dict[str, float] = field(default_factory=dict)
    backward_ms: dict[str, float] = field(default_factory=dict)

    def ratio(self, kind: str, baseline: str = "deepctr") -> float | None:
        times = self.forward_ms if kind == "forward" else self.backward_ms
        if baseline not in times or "deepctr_ops" not in times:
            return None
        return times[baseline] / times["deepctr_ops"]

    def as_dict(self) -> dict:
        return {
            "case": self.case,
            "forward_ms": self.forward_ms,
            "forward_backward_ms": self.backward_ms,
            "speedup_vs_deepctr": {
                "forward": self.ratio("forward"),
                "forward_backward": self.ratio("backward"),
            },
            "speedup_vs_twin": {
                "forward": self.ratio("forward", "twin"),
                "forward_backward": self.ratio("backward", "twin"),
            },
        }


def _median_ms(fn: Callable[[], object], repeats: int, min_seconds: float) -> float:
    fn()  # Warm-up: tracing and first-run allocations.
    fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= 10 * repeats:
            break
    return statistics.median(samples)


def _as_tensor_inputs(inputs: list) -> list:
    return [x if isinstance(x, (tf.Tensor, tf.RaggedTensor)) else tf.constant(x) for x in inputs]


def _time_implementation(case: Case, impl: str, inputs: list, repeats: int,
                         min_seconds: float) -> tuple[float, float]:
    layer = case.layers[impl]()
    trace_impl = "tf" if impl == "twin" else "op"

    @tf.function
    def forward(*xs):
        return layer(list(xs))

    @tf.function
    def forward_backward(*xs):
        with tf.GradientTape() as tape:
            for i in case.differentiate:
                tape.watch(xs[i])
            out = layer(list(xs))
            loss = tf.reduce_sum(out * out) if not isinstance(out, list) else tf.add_n(
                [tf.reduce_sum(o * o) for o in out])
        sources = [xs[i] for i in case.differentiate] + list(
            getattr(layer, "trainable_variables", []))
        return tape.gradient(loss, sources)

    with implementation(trace_impl):
        forward_ms = _median_ms(lambda: forward(*inputs), repeats, min_seconds)
        backward_ms = _median_ms(lambda: forward_backward(*inputs), repeats, min_seconds)
    return forward_ms, backward_ms


def run_cases(cases: Sequence[Case], repeats: int = 20, min_seconds: float = 1.0,
              seed: int = 0, log: Callable[[str], None] = print) -> list[Result]:
    results = []
    for case in cases:
        inputs = _as_tensor_inputs(case.make_inputs(np.random.default_rng(seed)))
        result = Result(case.name)
        for impl in IMPLEMENTATIONS:
            if impl not in case.layers:
                continue
            try:
                fwd, bwd = _time_implementation(case, impl, inputs, repeats, min_seconds)
            except Exception as err:  # A reference that cannot run is reported, not fatal.
                log(f"  {case.name}: {impl} failed: {type(err).__name__}: {err}")
                continue
            result.forward_ms[impl] = fwd
            result.backward_ms[impl] = bwd
        log(f"  done: {case.name}")
        results.append(result)
    return results


def _fmt_ms(times: dict[str, float], impl: str) -> str:
    return f"{times[impl]:.2f}" if impl in times else "n/a"


def _fmt_ratio(value: float | None) -> str:
    return f"{value:.1f}x" if value is not None else "n/a"


def format_table(results: Sequence[Result]) -> str:
    """Markdown table of medians (ms) and speedups; pasted into README.md."""
    header = (
        "| case | pass | deepctr-ops ms | DeepCTR ms | TF twin ms | vs DeepCTR | vs twin |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for r in results:
        for kind, label, times in (("forward", "fwd", r.forward_ms),
                                   ("backward", "fwd+bwd", r.backward_ms)):
            lines.append(
                f"| {r.case} | {label} | {_fmt_ms(times, 'deepctr_ops')} | "
                f"{_fmt_ms(times, 'deepctr')} | {_fmt_ms(times, 'twin')} | "
                f"{_fmt_ratio(r.ratio(kind))} | {_fmt_ratio(r.ratio(kind, 'twin'))} |"
            )
    return "\n".join(lines)
