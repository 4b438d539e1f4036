"""The EmbeddingPooling benchmark rows (on tiny sizes: no timing claims) and
the runner's tables for cases that name baselines of their own."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from deepctr_ops.bench import Result, embedding_pool, format_table, run_cases
from deepctr_ops.cli import _bench_cases

SMALL = dict(vocab=60, batch=10, time=7, emb=4)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_every_implementation_computes_the_same_pooling_and_sparse_gradient(mode):
    case = embedding_pool._embedding_pool_case(mode, **SMALL)
    expected = {"deepctr_ops", "deepctr", "unfused"} | (
        set() if mode == "max" else {"embedding_lookup_sparse"})
    assert set(case.layers) == expected
    inputs = case.make_inputs(np.random.default_rng(0))
    ids, lengths, sparse = inputs
    assert (ids[np.arange(SMALL["time"])[None, :] >= lengths] == 0).all()
    assert (ids[np.arange(SMALL["time"])[None, :] < lengths] > 0).all()
    assert sparse.values.shape[0] == lengths.sum()
    xs = [x if isinstance(x, tf.SparseTensor) else tf.constant(x) for x in inputs]
    results = {}
    for name, factory in case.layers.items():
        layer = factory()
        (variable,) = layer.trainable_variables
        with tf.GradientTape() as tape:
            out = layer(xs)
            loss = tf.reduce_sum(out * out)
        grad = tape.gradient(loss, variable)
        assert isinstance(grad, tf.IndexedSlices), name  # Never densified.
        results[name] = (out.numpy(), tf.convert_to_tensor(grad).numpy())
    reference = results["deepctr"]
    assert reference[0].shape == (SMALL["batch"], 1, SMALL["emb"])
    for name, (out, grad) in results.items():
        np.testing.assert_allclose(out, reference[0], rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(grad, reference[1], rtol=1e-6, atol=1e-7, err_msg=name)


def test_the_cli_registers_the_full_size_rows():
    names = [c.name for c in _bench_cases("embeddingpooling")]
    assert names == [f"EmbeddingPooling {m} V1000000 B4096 T50 E64 len~U[0,T]"
                     for m in ("sum", "mean", "max")]


def test_cases_with_own_baselines_get_their_own_table_and_json_keys(tmp_path):
    from deepctr_ops.bench.plot import _rows, plot_results

    standard = Result("pool B4", forward_ms={"deepctr_ops": 1.0, "deepctr": 8.0, "twin": 4.0},
                      backward_ms={"deepctr_ops": 2.0, "deepctr": 10.0, "twin": 5.0})
    before = format_table([standard])
    cases = [embedding_pool._embedding_pool_case(mode, **SMALL) for mode in ("mean", "max")]
    own = run_cases(cases, repeats=2, min_seconds=0.0, rounds=1, log=lambda _: None)
    assert own[0].baselines() == ["deepctr", "embedding_lookup_sparse", "unfused"]
    assert own[1].baselines() == ["deepctr", "unfused"]
    table = format_table([standard, *own])
    assert table.startswith(before + "\n\n")  # The other cases' table is unchanged.
    second = table[len(before) + 2:].splitlines()
    assert second[0] == (
        "| case | pass | deepctr-ops ms | DeepCTR ms | embedding_lookup_sparse ms | "
        "unfused ms | vs DeepCTR | vs embedding_lookup_sparse | vs unfused |")
    assert len(second) == 2 + 4
    max_row = next(line for line in second if "max" in line and "fwd+bwd" in line)
    cells = [c.strip(" |") for c in max_row.split(" | ")]
    assert cells[4] == cells[7] == "n/a"  # Max has no embedding_lookup_sparse.
    assert "n/a" not in cells[:4] + cells[5:7] + cells[8:]
    record = json.loads(json.dumps(own[0].as_dict()))
    assert record["speedup_vs_unfused"]["forward_backward"] == pytest.approx(
        own[0].backward_ms["unfused"] / own[0].backward_ms["deepctr_ops"])
    assert "speedup_vs_unfused" not in standard.as_dict()
    labels, ratios = _rows([standard, *own])
    assert set(ratios) == {"deepctr", "twin", "embedding_lookup_sparse", "unfused"}
    plot_results([standard, *own], str(tmp_path / "speed.png"))
