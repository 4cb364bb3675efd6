"""Power-of-two (INQ) kernels in the file: int8 with per-row scales, or float16 for 5 bits.

`tfqnn.export.int8_weights` stores the low-bit kernels of builtin-exported
`QuantDense` and `QuantConv2D` layers as int8 (a row of powers of two spanning
at most 2^6 is an int8 row times a power-of-two scale) or, when a row spans
2^7 (INQ's 5-bit codebook needs the integer 128), as float16, which holds
those powers of two exactly. The expected kernels come from INQ's formulas in
numpy, not from the layers.
"""

import keras
import numpy as np

import tfqnn
from tests._tflite import builtin_ops
from tfqnn.export import int8_weights
from tfqnn.layers import QuantConv2D, QuantDense
from tfqnn.quantizers import PowerOfTwo


def inq_levels(w, bits):
    """INQ: n1 = floor(log2(4 max|w| / 3)), n2 = n1 + 1 - 2^(bits-2), nearest of {0, +-2^n}."""
    w = w.astype(np.float64)
    n1 = int(np.floor(np.log2(4.0 * np.abs(w).max() / 3.0)))
    n2 = n1 + 1 - 2 ** (bits - 2)
    levels = np.array([0.0] + [2.0**n for n in range(n2, n1 + 1)])
    distance = np.abs(np.abs(w)[..., None] - levels)
    # ties go to the larger level (away from zero): the last of the minima
    nearest = levels.size - 1 - np.argmin(distance[..., ::-1], axis=-1)
    return np.sign(w) * levels[nearest]


def inq_model(rng):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            QuantConv2D(16, 3, kernel_quantizer=PowerOfTwo(5), use_bias=False),
            keras.layers.MaxPooling2D(2),
            QuantConv2D(8, 3, padding="same", kernel_quantizer=PowerOfTwo(4), use_bias=False),
            keras.layers.BatchNormalization(),  # folds into the conv's rows
            keras.layers.Flatten(),
            QuantDense(10, kernel_quantizer=PowerOfTwo(3)),
            keras.layers.BatchNormalization(),  # folds into the dense rows
        ]
    )
    for weight in model.weights:
        if weight.name in ("moving_variance", "gamma"):
            weight.assign(rng.uniform(0.5, 2.0, weight.shape))
        else:
            weight.assign(np.clip(rng.normal(0, 0.3, weight.shape), -0.9, 0.9))
    kernel = model.layers[0].kernel.numpy()
    kernel[0, 0, 0, :] = 1.0  # n1 = 0 for the tensor ...
    kernel[0, 0, 1, :] = 2.0**-7  # ... and every output channel spans 2^-7 .. 2^0
    model.layers[0].kernel.assign(kernel)
    return model


def weight_constants(data):
    """{name: (dtype, value)} of the constants the DEQUANTIZE ops read."""
    from ai_edge_litert import interpreter as litert

    inspector = litert.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    inspector.allocate_tensors()
    found = {}
    for detail in inspector.get_tensor_details():
        if detail["name"].endswith(("_int8", "_float16")):
            value = inspector.get_tensor(detail["index"])
            scales = detail["quantization_parameters"]["scales"]
            found[detail["name"]] = (value.dtype, value, scales)
    return found


def test_power_of_two_kernels_are_stored_in_int8_or_float16(rng, monkeypatch):
    model = inq_model(rng)
    data = tfqnn.export.to_tflite(model, verbose=0)
    assert builtin_ops(data).get("DEQUANTIZE") == 3
    found = weight_constants(data)
    kinds = sorted((str(dtype), value.shape) for dtype, value, _ in found.values())
    assert kinds == [("float16", (16, 3, 3, 4)), ("int8", (8, 3, 3, 16)), ("int8", (10, 72))]

    # The 5-bit kernel: exactly INQ's levels, in float16, OHWI.
    conv5 = inq_levels(model.layers[0].kernel.numpy(), 5)
    assert np.abs(conv5).max() / np.abs(conv5[conv5 != 0]).min() == 128  # no int8 row for it
    (half,) = [v for dtype, v, _ in found.values() if dtype == np.float16]
    np.testing.assert_array_equal(half.astype(np.float64), np.transpose(conv5, (3, 0, 1, 2)))
    # The 4-bit conv and the 3-bit dense kernel, each with a BatchNorm folded: int8 rows,
    # each row INQ's levels times the BatchNorm's factor.
    conv4 = np.transpose(inq_levels(model.layers[2].kernel.numpy(), 4), (3, 0, 1, 2))
    dense3 = inq_levels(model.layers[-2].kernel.numpy(), 3).T
    for expected in (conv4, dense3):
        (ints, scales) = [(v, s) for _, v, s in found.values() if v.shape == expected.shape][0]
        rows = ints.reshape(len(ints), -1) * scales[:, None].astype(np.float64)
        levels = expected.reshape(len(expected), -1)
        factors = np.sum(rows * levels, axis=1) / np.sum(levels**2, axis=1)
        assert np.ptp(factors) > 0.01 * np.abs(factors).max()  # not one factor for all rows
        np.testing.assert_allclose(rows, factors[:, None] * levels, rtol=1e-6, atol=0)

    # Outputs: Keras's, and the float32 file's; the file is smaller by the weights' bytes.
    x = rng.normal(size=(3, 8, 8, 4)).astype(np.float32)
    actual = tfqnn.lite.Interpreter(model_content=data).predict(x)
    expected = model.predict(x, verbose=0)
    # float32 sums in another order: the error scales with the largest values (~50 here).
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    monkeypatch.setattr(int8_weights, "store_int8_weights", lambda data, refs: (data, 0))
    float_data = tfqnn.export.to_tflite(model, verbose=0)
    assert "DEQUANTIZE" not in builtin_ops(float_data)
    float_out = tfqnn.lite.Interpreter(model_content=float_data).predict(x)
    np.testing.assert_allclose(actual, float_out, rtol=1e-5, atol=1e-6)
    saved = 16 * 36 * (4 - 2) + 8 * 144 * (4 - 1) + 10 * 72 * (4 - 1)
    assert len(float_data) - len(data) >= saved - 1024  # the new ops, scales and names
