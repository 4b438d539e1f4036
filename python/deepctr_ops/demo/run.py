"""`deepctr-ops demo`: train DIN and DIEN on deepctr-ops layers, score held-out
data, compare training speed with the same models on DeepCTR's layers, then
export, reload in a fresh process and serve a few requests.

The models are DeepCTR's own `DIN` and `DIEN`, built from DeepCTR feature
columns; `patch_deepctr()` makes them use this package's layers, and the
unpatched build is the DeepCTR baseline for examples/s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .data import ClickLog, auc, generate, read_csv

EMBEDDING = 8


@dataclass
class Outcome:
    model: str
    auc: float
    ours_examples_per_s: float
    deepctr_examples_per_s: float | None
    deepctr_note: str = ""


def _feature_columns(log: ClickLog):
    from deepctr.feature_column import SparseFeat, VarLenSparseFeat

    items, categories = log.vocab("item"), log.vocab("category")
    items = max(items, log.vocab("hist_items"))
    categories = max(categories, log.vocab("hist_categories"))
    # No per-user embedding: on tens of thousands of rows it only memorises
    # users, and the demo is about what the behaviour sequence carries.
    return [
        SparseFeat("item_id", items, embedding_dim=EMBEDDING),
        SparseFeat("cate_id", categories, embedding_dim=EMBEDDING),
        VarLenSparseFeat(SparseFeat("hist_item_id", items, embedding_dim=EMBEDDING,
                                    embedding_name="item_id"),
                         maxlen=log.max_len, length_name="seq_length"),
        VarLenSparseFeat(SparseFeat("hist_cate_id", categories, embedding_dim=EMBEDDING,
                                    embedding_name="cate_id"),
                         maxlen=log.max_len, length_name="seq_length"),
    ]


def _inputs(log: ClickLog) -> dict[str, np.ndarray]:
    return {"item_id": log.item, "cate_id": log.category,
            "hist_item_id": log.hist_items, "hist_cate_id": log.hist_categories,
            "seq_length": log.length}


def _build(kind: str, columns, seed: int):
    from deepctr.models import DIEN, DIN

    tf.keras.utils.set_random_seed(seed)
    behaviour = ["item_id", "cate_id"]
    if kind == "DIN":
        model = DIN(columns, behaviour, dnn_hidden_units=(64, 32), att_hidden_size=(32, 16),
                    att_activation="sigmoid", seed=seed)
    else:
        model = DIEN(columns, behaviour, gru_type="AUGRU", dnn_hidden_units=(64, 32),
                     att_hidden_units=(32, 16), att_activation="sigmoid", seed=seed)
    model.compile(tf.keras.optimizers.Adam(3e-3), "binary_crossentropy")
    return model


def _examples_per_s(model, x: dict, y: np.ndarray, batch: int, steps: int) -> float:
    batches = [({k: v[i * batch:(i + 1) * batch] for k, v in x.items()},
                y[i * batch:(i + 1) * batch]) for i in range(steps + 2)]
    for xb, yb in batches[:2]:  # Warm-up: tracing.
        model.train_on_batch(xb, yb)
    start = time.perf_counter()
    for xb, yb in batches[2:]:
        model.train_on_batch(xb, yb)
    return steps * batch / (time.perf_counter() - start)


def _graph_examples_per_s(kind: str, columns, x, y, batch, steps, seed) -> float:
    """DeepCTR's model trained in a TF1 graph with a session: the only way its
    DIEN runs on TF 2 (its DynamicGRU needs six removed TF aliases, put back here,
    and creates its AGRU/AUGRU weights with tf.compat.v1.get_variable)."""
    from ..bench.gru import restore_removed_tf_aliases

    restore_removed_tf_aliases()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.keras.backend.set_session(session)
        tf.compat.v1.set_random_seed(seed)
        model = _build(kind, columns, seed)
        labels = tf.compat.v1.placeholder(tf.float32, [None, 1])
        loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels, model.outputs[0]))
        train = tf.compat.v1.train.AdamOptimizer(3e-3).minimize(loss)
        session.run(tf.compat.v1.global_variables_initializer())

        def feed(i):
            rows = slice(i * batch, (i + 1) * batch)
            inputs = {inp: np.reshape(x[name][rows], [-1, *inp.shape[1:]])
                      for inp, name in zip(model.inputs, model.input_names)}
            inputs[labels] = y[rows].reshape(-1, 1)
            return inputs

        for i in range(2):  # Warm-up.
            session.run(train, feed_dict=feed(i))
        start = time.perf_counter()
        for i in range(2, steps + 2):
            session.run(train, feed_dict=feed(i))
        return steps * batch / (time.perf_counter() - start)


def _deepctr_speed(kind: str, columns, x, y, batch, steps, seed) -> tuple[float | None, str]:
    """The same model on DeepCTR's own layers (eagerly with Keras, else in a TF1
    graph), or why it cannot run here."""
    try:
        model = _build(kind, columns, seed)
        return _examples_per_s(model, x, y, batch, steps), ""
    except Exception as eager_error:  # noqa: BLE001  (DeepCTR's failure is the result)
        try:
            speed = _graph_examples_per_s(kind, columns, x, y, batch, steps, seed)
            return speed, (f"DeepCTR's {kind} runs on TF {tf.__version__} only in a TF1 graph "
                           f"session, with six removed TF aliases put back: timed that way")
        except Exception:  # noqa: BLE001
            text = str(eager_error).strip()
            first_line = text.splitlines()[0] if text else type(eager_error).__name__
            return None, f"DeepCTR's {kind} does not run on TF {tf.__version__}: {first_line[:120]}"


def _export_and_serve(model, test: ClickLog, directory: str) -> tuple[np.ndarray, np.ndarray]:
    """Exports a SavedModel, scores 5 requests with it in a fresh process."""
    from ..compat import IS_KERAS_3

    path = os.path.join(directory, "din_saved_model")
    if IS_KERAS_3:
        model.export(path, verbose=False)
    else:
        model.save(path, save_format="tf")
    requests = {k: v[:5] for k, v in _inputs(test).items()}
    expected = model.predict(requests, verbose=0).ravel()
    request_file = os.path.join(directory, "requests.npz")
    np.savez(request_file, **requests)
    code = textwrap.dedent(f"""
        import json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import numpy as np, tensorflow as tf
        import deepctr_ops
        loaded = deepctr_ops.load_saved_model({path!r})
        data = dict(np.load({request_file!r}))
        serve = loaded.signatures["serving_default"]
        specs = serve.structured_input_signature[1]
        inputs = {{name: tf.constant(np.reshape(data[name], [-1, *spec.shape[1:]]), spec.dtype)
                  for name, spec in specs.items()}}
        out = list(serve(**inputs).values())[0]
        print(json.dumps(np.asarray(out).ravel().tolist()))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise RuntimeError("serving the exported model failed:\n" + result.stderr[-2000:])
    served = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    return expected, served


def run(data: str | None, samples: int, epochs: int, seed: int, batch: int,
        out_dir: str | None) -> int:
    from .. import patch_deepctr

    log = read_csv(data) if data else generate(samples=samples, seed=seed)
    train, test = log.split(0.2, seed)
    print(f"click logs: {len(train)} train / {len(test)} held-out rows, history length "
          f"<= {log.max_len}, click rate {log.label.mean():.2f}"
          + (f" (from {data})" if data else f" (generated, seed {seed})"))
    columns = _feature_columns(log)
    x_train, x_test = _inputs(train), _inputs(test)
    steps = min(30, len(train) // batch - 2)
    results = {}
    trained = {}
    for kind in ("DIN", "DIEN"):
        with patch_deepctr():
            model = _build(kind, columns, seed)
            print(f"\n{kind} on deepctr-ops layers: training {epochs} epoch(s)")
            model.fit(x_train, train.label, batch_size=batch, epochs=epochs, verbose=1,
                      shuffle=True)
            scores = model.predict(x_test, batch_size=1024, verbose=0).ravel()
            ours = _examples_per_s(_build(kind, columns, seed), x_train, train.label, batch,
                                   steps)
        results[kind] = (auc(test.label, scores), ours)
        trained[kind] = model

    # Export and serve before the DeepCTR baselines: DeepCTR's DIEN is timed in a
    # TF1 graph, and Keras cannot save a model built outside one after that.
    directory = out_dir or tempfile.mkdtemp(prefix="deepctr_ops_demo_")
    os.makedirs(directory, exist_ok=True)
    with patch_deepctr():
        expected, served = _export_and_serve(trained["DIN"], test, directory)

    outcomes = []
    for kind, (score_auc, ours) in results.items():
        theirs, note = _deepctr_speed(kind, columns, x_train, train.label, batch, steps, seed)
        outcomes.append(Outcome(kind, score_auc, ours, theirs, note))

    print("\n| model | held-out AUC | deepctr-ops examples/s | DeepCTR examples/s | speedup |")
    print("|---|---:|---:|---:|---:|")
    for o in outcomes:
        theirs = f"{o.deepctr_examples_per_s:,.0f}" if o.deepctr_examples_per_s else "n/a"
        ratio = (f"{o.ours_examples_per_s / o.deepctr_examples_per_s:.1f}x"
                 if o.deepctr_examples_per_s else "n/a")
        print(f"| {o.model} | {o.auc:.3f} | {o.ours_examples_per_s:,.0f} | {theirs} | {ratio} |")
    for o in outcomes:
        if o.deepctr_note:
            print(f"  {o.deepctr_note}")

    print(f"\nexported DIN to {directory}/din_saved_model, reloaded it in a fresh process "
          f"and scored 5 requests:")
    print("  in process:", " ".join(f"{v:.4f}" for v in expected))
    print("  served:    ", " ".join(f"{v:.4f}" for v in served))
    if not np.allclose(expected, served, rtol=1e-4, atol=1e-5):
        print("the served scores differ from the in-process ones", file=sys.stderr)
        return 1
    return 0
