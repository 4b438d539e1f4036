"""KMaxPooling: DeepCTR parity (both Keras modes: it runs in both) and the axis fixes."""

from __future__ import annotations

import numpy as np
import numpy_reference as ref
import pytest
import tensorflow as tf
from deepctr_ops.compat import keras
from deepctr_ops.layers.sequence import KMaxPooling
from helpers import value_and_input_grads


@pytest.mark.parametrize("shape,k,axis", [
    ((4, 9, 5), 3, 1), ((4, 9, 5), 2, 2), ((3, 6, 5, 4), 4, 1), ((3, 6, 5, 4), 2, 2),
    ((3, 6, 5, 4), 4, 3), ((5, 7), 7, 1),
])
def test_matches_deepctr(shape, k, axis, rng):
    from deepctr.layers.sequence import KMaxPooling as DeepCTRKMax

    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0] = x[0, 1]  # ties
    out_t, (g_t,) = value_and_input_grads(lambda xs: DeepCTRKMax(k, axis)(xs[0]), [x])
    out_o, (g_o,) = value_and_input_grads(lambda xs: KMaxPooling(k, axis)(xs[0]), [x])
    np.testing.assert_array_equal(out_o, out_t)
    np.testing.assert_array_equal(g_o, g_t)
    np.testing.assert_array_equal(out_o, ref.kmax_pooling(x, k, axis))


@pytest.mark.parametrize("ndims", [2, 3, 4])
def test_negative_axes_mean_counted_from_the_end(ndims, rng):
    shape = (3, 6, 5, 4)[:ndims]
    x = rng.standard_normal(shape).astype(np.float32)
    for axis in range(1, ndims):
        neg = axis - ndims
        out = KMaxPooling(2, neg)(tf.constant(x)).numpy()
        np.testing.assert_array_equal(out, KMaxPooling(2, axis)(tf.constant(x)).numpy())
        np.testing.assert_array_equal(out, ref.kmax_pooling(x, 2, axis))
    # The default axis=-1 is the last axis (DeepCTR's build rejects it).
    np.testing.assert_array_equal(KMaxPooling(2)(tf.constant(x)).numpy(),
                                  ref.kmax_pooling(x, 2, ndims - 1))


def test_output_shape_and_functional_model(rng):
    x = rng.standard_normal((4, 9, 5)).astype(np.float32)
    inp = keras.Input((9, 5))
    layer = KMaxPooling(3, 1)
    out = layer(inp)
    assert tuple(out.shape) == (None, 3, 5)
    assert tuple(layer.compute_output_shape((None, 9, 5))) == (None, 3, 5)
    assert tuple(KMaxPooling(2).compute_output_shape((None, 9, 5))) == (None, 9, 2)
    model = keras.Model(inp, out)
    np.testing.assert_array_equal(model.predict(x, verbose=0), ref.kmax_pooling(x, 3, 1))
    assert KMaxPooling.from_config(layer.get_config()).get_config() == layer.get_config()
    assert layer.get_config()["k"] == 3 and layer.get_config()["axis"] == 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(k=0), "k"), (dict(k=10, axis=1), "k"), (dict(axis=0), "axis"), (dict(axis=3), "axis"),
    (dict(axis=-3), "axis"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KMaxPooling(**kwargs)(tf.zeros((2, 9, 5)))
