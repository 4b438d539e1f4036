"""`deepctr-ops bench --plot FILE.png`: the speed table as a bar chart.

One horizontal bar per (case, pass) and baseline: how many times faster
deepctr-ops ran than that baseline in the same run (log scale; 1x marked).
matplotlib is an optional extra: `pip install "deepctr-ops[plot]"`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .runner import Result

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
_NAMES = {"deepctr": "DeepCTR", "twin": "TF twin", "keras": "Keras GRU",
          "embedding_lookup_sparse": "tf.nn.embedding_lookup_sparse",
          "unfused": "unfused (tf.gather + pooling)"}


def _rows(results: Sequence[Result]) -> tuple[list[str], dict[str, list[float | None]]]:
    labels: list[str] = []
    ratios: dict[str, list[float | None]] = {}
    baselines = sorted({impl for r in results for impl in (*r.forward_ms, *r.backward_ms)}
                       - {"deepctr_ops"}, key=lambda b: (b != "deepctr", b))
    for result in results:
        for kind, label in (("forward", "fwd"), ("backward", "fwd+bwd")):
            labels.append(f"{result.case} {label}")
            for baseline in baselines:
                ratios.setdefault(baseline, []).append(result.ratio(kind, baseline))
    return labels, ratios


def plot_results(results: Sequence[Result], path: str, title: str = "") -> None:
    try:
        import matplotlib
    except ImportError as err:
        raise SystemExit('--plot needs matplotlib: pip install "deepctr-ops[plot]"') from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels, ratios = _rows(results)
    height = 0.8 / max(len(ratios), 1)
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(labels) * max(len(ratios), 1) + 1.5))
    for i, (baseline, values) in enumerate(ratios.items()):
        ys = [row + i * height for row in range(len(labels))]
        xs = [v if v is not None else 0 for v in values]
        bars = ax.barh(ys, xs, height=height, color=_COLOURS[i % len(_COLOURS)],
                       label=f"vs {_NAMES.get(baseline, baseline)}")
        for bar, value in zip(bars, values):
            if value is not None:
                ax.text(bar.get_width() * 1.03, bar.get_y() + bar.get_height() / 2,
                        f"{value:.1f}x", va="center", fontsize=7)
    ax.set_yticks([row + height * (len(ratios) - 1) / 2 for row in range(len(labels))])
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    shown = [v for values in ratios.values() for v in values if v]
    ticks = [t for t in (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100)
             if min(shown, default=1) / 2 <= t <= max(shown, default=1) * 2]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("times faster than the baseline, same run (log scale; 1x = equal)")
    ax.set_title(title or "deepctr-ops bench", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
