"""Loading SavedModels that use deepctr-ops' ops.

A SavedModel stores op names (`DeepCTR>SequencePool`, ...) and needs this
package's op library and gradient registrations in the loading process.
Without ``import deepctr_ops``, ``tf.saved_model.load`` fails at the first call
with TensorFlow's own message, which names the op::

    Op type not registered 'DeepCTR>SequencePool' in binary running on ...

and the fix is to ``import deepctr_ops`` first (TF Serving: link the ops into
``tensorflow_model_server``, see tools/tfserving). :func:`load_saved_model`
loads after making sure the ops are registered, and says which ops a model
needs that this version of deepctr-ops does not have (a model exported with a
newer deepctr-ops).
"""

from __future__ import annotations

import os

import tensorflow as tf

from . import _loader

OP_PREFIX = "DeepCTR>"


def saved_model_ops(path: str) -> set[str]:
    """The `DeepCTR>` op names a SavedModel's graphs and functions use."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    names = set()
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        names.update(node.op for node in graph.node)
        for function in graph.library.function:
            names.update(node.op for node in function.node_def)
    return {name for name in names if name.startswith(OP_PREFIX)}


def missing_ops(path: str) -> set[str]:
    """The `DeepCTR>` ops the SavedModel at `path` uses that are not registered."""
    from tensorflow.python.framework import op_def_registry

    _loader.load()
    return {name for name in saved_model_ops(path) if op_def_registry.get(name) is None}


def load_saved_model(path: str, tags=None, options=None):
    """`tf.saved_model.load` for models that use deepctr-ops' ops.

    Registers the ops and their gradients (so the model can be fine-tuned), and
    raises a ValueError that names each `DeepCTR>` op this deepctr-ops version
    lacks, instead of TensorFlow's "Op type not registered" at the first call.
    """
    from . import __version__, ops  # noqa: F401  (registers the gradients)

    missing = missing_ops(path)
    if missing:
        raise ValueError(
            f"the SavedModel at {path} uses {', '.join(sorted(missing))}, which deepctr-ops "
            f"{__version__} does not provide: it was exported with a newer deepctr-ops. "
            f"Install that version (pip install -U deepctr-ops).")
    return tf.saved_model.load(path, tags=tags, options=options)
