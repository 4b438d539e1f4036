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
# set_implementation("tf"): the same layers on stock TF ops. "keras" is a
# stock Keras layer doing the same job (the GRU rows). A case may name other
# baselines (its `layers` keys); they follow these, in the case's order, and
# their rows get a table of their own.
IMPLEMENTATIONS = ("deepctr_ops", "deepctr", "twin", "keras")

# Column labels of the baselines ("<label> ms", "vs <label>").
BASELINE_LABELS = {
    "deepctr": "DeepCTR",
    "twin": "TF twin",
    "keras": "Keras",
    "embedding_lookup_sparse": "embedding_lookup_sparse",
    "unfused": "unfused",
}


def implementations_of(case: Case) -> list[str]:
    """The case's implementations in report order: IMPLEMENTATIONS, then its own."""
    return [i for i in IMPLEMENTATIONS if i in case.layers] + [
        i for i in case.layers if i not in IMPLEMENTATIONS]


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
    # Median of each round, per implementation: how much the machine drifted.
    forward_rounds_ms: dict[str, list[float]] = field(default_factory=dict)
    backward_rounds_ms: dict[str, list[float]] = field(default_factory=dict)
    # The case's implementations, timed or not (empty: those with times).
    implementations: list[str] = field(default_factory=list)

    def baselines(self) -> list[str]:
        """Every implementation but deepctr_ops, in report order."""
        names = self.implementations or list(dict.fromkeys([*self.forward_ms,
                                                            *self.backward_ms]))
        return [n for n in names if n != "deepctr_ops"]

    def has_own_baselines(self) -> bool:
        """True when the case names baselines beyond IMPLEMENTATIONS."""
        return any(b not in IMPLEMENTATIONS for b in self.baselines())

    def ratio(self, kind: str, baseline: str = "deepctr") -> float | None:
        times = self.forward_ms if kind == "forward" else self.backward_ms
        if baseline not in times or "deepctr_ops" not in times:
            return None
        return times[baseline] / times["deepctr_ops"]

    def as_dict(self) -> dict:
        own = {f"speedup_vs_{b}": {"forward": self.ratio("forward", b),
                                   "forward_backward": self.ratio("backward", b)}
               for b in self.baselines() if b not in IMPLEMENTATIONS}
        return {
            "case": self.case,
            "forward_ms": self.forward_ms,
            "forward_backward_ms": self.backward_ms,
            "forward_round_medians_ms": self.forward_rounds_ms,
            "forward_backward_round_medians_ms": self.backward_rounds_ms,
            "speedup_vs_deepctr": {
                "forward": self.ratio("forward"),
                "forward_backward": self.ratio("backward"),
            },
            "speedup_vs_twin": {
                "forward": self.ratio("forward", "twin"),
                "forward_backward": self.ratio("backward", "twin"),
            },
            "speedup_vs_keras": {
                "forward": self.ratio("forward", "keras"),
                "forward_backward": self.ratio("backward", "keras"),
            },
            **own,
        }


def _samples_ms(fn: Callable[[], object], repeats: int, min_seconds: float) -> list[float]:
    samples = []
    start = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= 10 * repeats:
            break
    return samples


def _as_tensor_inputs(inputs: list) -> list:
    return [x if isinstance(x, (tf.Tensor, tf.RaggedTensor, tf.SparseTensor)) else tf.constant(x)
            for x in inputs]


@dataclass
class _Timed:
    """The traced, warmed-up functions of one implementation of a case."""

    trace_impl: str
    forward: Callable[[], object]
    forward_backward: Callable[[], object]


def _prepare(case: Case, impl: str, inputs: list) -> _Timed:
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

    timed = _Timed(trace_impl, lambda: forward(*inputs), lambda: forward_backward(*inputs))
    with implementation(trace_impl):
        for fn in (timed.forward, timed.forward_backward):
            fn()  # Tracing and first-run allocations.
            fn()
    return timed


def _time_case(case: Case, repeats: int, min_seconds: float, rounds: int, seed: int,
               log: Callable[[str], None]) -> Result:
    """Times every implementation of `case` in `rounds` interleaved rounds.

    Each round times each implementation for 1/rounds of the budget, starting
    with a different one each round, so that a machine whose speed drifts
    (shared memory bandwidth, frequency) slows every implementation alike
    instead of whichever happened to run at the slow moment. Within a round
    calls are back to back, as in a training loop.
    """
    inputs = _as_tensor_inputs(case.make_inputs(np.random.default_rng(seed)))
    result = Result(case.name, implementations=implementations_of(case))
    timed: dict[str, _Timed] = {}
    for impl in result.implementations:
        try:
            timed[impl] = _prepare(case, impl, inputs)
        except Exception as err:  # A reference that cannot run is reported, not fatal.
            log(f"  {case.name}: {impl} failed: {type(err).__name__}: {err}")
    names = list(timed)
    if not names:
        return result
    rounds = max(1, rounds)
    per_round = max(1, -(-repeats // rounds))
    forward: dict[str, list[float]] = {impl: [] for impl in timed}
    backward: dict[str, list[float]] = {impl: [] for impl in timed}
    for r in range(rounds):
        for impl in names[r % len(names):] + names[:r % len(names)]:
            t = timed[impl]
            with implementation(t.trace_impl):
                fwd = _samples_ms(t.forward, per_round, min_seconds / rounds)
                bwd = _samples_ms(t.forward_backward, per_round, min_seconds / rounds)
            forward[impl] += fwd
            backward[impl] += bwd
            result.forward_rounds_ms.setdefault(impl, []).append(statistics.median(fwd))
            result.backward_rounds_ms.setdefault(impl, []).append(statistics.median(bwd))
    for impl in names:
        result.forward_ms[impl] = statistics.median(forward[impl])
        result.backward_ms[impl] = statistics.median(backward[impl])
    return result


def run_cases(cases: Sequence[Case], repeats: int = 20, min_seconds: float = 1.0,
              seed: int = 0, rounds: int = 5,
              log: Callable[[str], None] = print) -> list[Result]:
    """Times each case; medians over all samples of all rounds (see _time_case)."""
    results = []
    for case in cases:
        results.append(_time_case(case, repeats, min_seconds, rounds, seed, log))
        log(f"  done: {case.name}")
    return results


def _fmt_ms(times: dict[str, float], impl: str) -> str:
    return f"{times[impl]:.2f}" if impl in times else "n/a"


def _fmt_ratio(value: float | None) -> str:
    return f"{value:.1f}x" if value is not None else "n/a"


def format_table(results: Sequence[Result]) -> str:
    """Markdown table of medians (ms) and speedups; pasted into README.md.

    Rows whose cases name baselines of their own (beyond IMPLEMENTATIONS)
    follow in a second table with a column per baseline any of them names
    ("n/a" where a row's case has no such baseline).
    """
    standard = [r for r in results if not r.has_own_baselines()]
    own = [r for r in results if r.has_own_baselines()]
    tables = [_format_standard_table(standard)] if standard or not own else []
    if own:
        baselines = list(dict.fromkeys(b for r in own for b in r.baselines()))
        tables.append(_format_table_with(baselines, own))
    return "\n\n".join(tables)


def _format_table_with(baselines: list[str], results: Sequence[Result]) -> str:
    """A table with one time and one ratio column per baseline, in order."""
    labels = [BASELINE_LABELS.get(b, b) for b in baselines]
    lines = [
        "| case | pass | deepctr-ops ms | " + "".join(f"{label} ms | " for label in labels)
        + " | ".join(f"vs {label}" for label in labels) + " |",
        "|---|---|---:|" + "---:|" * (2 * len(baselines)),
    ]
    for r in results:
        for kind, label, times in (("forward", "fwd", r.forward_ms),
                                   ("backward", "fwd+bwd", r.backward_ms)):
            cells = [_fmt_ms(times, "deepctr_ops"), *(_fmt_ms(times, b) for b in baselines),
                     *(_fmt_ratio(r.ratio(kind, b)) for b in baselines)]
            lines.append(f"| {r.case} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format_standard_table(results: Sequence[Result]) -> str:
    """The table of the cases timed against IMPLEMENTATIONS only."""
    header = (
        "| case | pass | deepctr-ops ms | DeepCTR ms | TF twin ms | vs DeepCTR | vs twin |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    if any("keras" in r.backward_ms for r in results):
        return _format_table_with_keras(results)
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


def _format_table_with_keras(results: Sequence[Result]) -> str:
    """format_table with the stock Keras layer's columns (the GRU rows)."""
    lines = [
        "| case | pass | deepctr-ops ms | DeepCTR ms | Keras ms | TF twin ms | vs DeepCTR | "
        "vs Keras | vs twin |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    ]
    for r in results:
        for kind, label, times in (("forward", "fwd", r.forward_ms),
                                   ("backward", "fwd+bwd", r.backward_ms)):
            lines.append(
                f"| {r.case} | {label} | {_fmt_ms(times, 'deepctr_ops')} | "
                f"{_fmt_ms(times, 'deepctr')} | {_fmt_ms(times, 'keras')} | "
                f"{_fmt_ms(times, 'twin')} | {_fmt_ratio(r.ratio(kind))} | "
                f"{_fmt_ratio(r.ratio(kind, 'keras'))} | {_fmt_ratio(r.ratio(kind, 'twin'))} |"
            )
    return "\n".join(lines)
