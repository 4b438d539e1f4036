"""PositionEncoding: DeepCTR parity (tf_keras) and the NumPy statement (both modes)."""

from __future__ import annotations

import numpy as np
import numpy_reference as ref
import pytest
from deepctr_ops.compat import IS_KERAS_3
from deepctr_ops.layers.sequence import PositionEncoding
from helpers import value_and_input_grads

OPTIONS = [dict(), dict(zero_pad=True), dict(scale=False), dict(pos_embedding_trainable=False),
           dict(zero_pad=True, scale=False)]


@pytest.mark.parametrize("kwargs", OPTIONS)
def test_matches_numpy_reference(kwargs, rng):
    x = rng.standard_normal((3, 11, 6)).astype(np.float32)
    layer = PositionEncoding(**kwargs)
    out, (grad,) = value_and_input_grads(lambda xs: layer(xs[0]), [x])
    table = ref.position_table(11, 6, kwargs.get("zero_pad", False))
    np.testing.assert_array_equal(layer.get_weights()[0], table.astype(np.float32))
    expected = ref.position_encoding(x, table, kwargs.get("scale", True))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    upstream = np.random.default_rng(7).standard_normal(out.shape)
    np.testing.assert_allclose(grad, upstream, rtol=1e-6)
    assert len(layer.trainable_weights) == (0 if kwargs.get("pos_embedding_trainable") is False
                                             else 1)
    assert layer.weights[0].name.split("/")[-1].split(":")[0] == "lookup_table"
    assert PositionEncoding.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.skipif(IS_KERAS_3, reason="DeepCTR's PositionEncoding cannot run under Keras 3 "
                                       "(spec 11)")
@pytest.mark.parametrize("kwargs", OPTIONS)
def test_matches_deepctr(kwargs, rng):
    from deepctr.layers.sequence import PositionEncoding as DeepCTRPE

    x = rng.standard_normal((3, 11, 6)).astype(np.float32)
    theirs, ours = DeepCTRPE(**kwargs), PositionEncoding(**kwargs)
    out_t, (g_t,) = value_and_input_grads(lambda xs: theirs(xs[0]), [x])
    ours.build(x.shape)
    np.testing.assert_array_equal(ours.get_weights()[0], theirs.get_weights()[0])
    trained = [w + np.float32(0.25) for w in theirs.get_weights()]
    theirs.set_weights(trained)
    ours.set_weights(trained)
    out_t, (g_t,) = value_and_input_grads(lambda xs: theirs(xs[0]), [x])
    out_o, (g_o,) = value_and_input_grads(lambda xs: ours(xs[0]), [x])
    np.testing.assert_array_equal(out_o, out_t)
    np.testing.assert_array_equal(g_o, g_t)
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)
    table = ref.position_table(11, 6, kwargs.get("zero_pad", False)) + 0.25
    np.testing.assert_allclose(out_t, ref.position_encoding(x, table, kwargs.get("scale", True)),
                               rtol=1e-6, atol=1e-6)
