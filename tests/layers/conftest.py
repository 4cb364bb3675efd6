"""Shared fixtures of the layer tests.

The numpy references live here as fixtures (not as an importable module) so
that the suite does not depend on how pytest names the test package. Each
reference is written from the definition of the operation (loops over output
positions), not from Keras or tfqnn, so that a layer is checked against an
independent computation.
"""

import numpy as np
import pytest


def np_sign(x):
    """+1 where x >= 0, else -1 (tfqnn's sign, with sign(0) = +1)."""
    return np.where(np.asarray(x) >= 0, 1.0, -1.0).astype(np.float32)


def same_pads(size, kernel, stride, dilation):
    """TensorFlow's "same" padding (before, after) of one spatial axis.

    The output has ceil(size / stride) positions; the total padding is what
    that many strided windows of extent (kernel - 1) * dilation + 1 need,
    the smaller half before.
    """
    out = -(-size // stride)
    extent = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def pad_same_2d(x, kernel_size, strides, dilation, value):
    """Pads NHWC ``x`` as "same" padding does, with ``value``."""
    pads = [(0, 0)]
    for axis, (k, s, d) in enumerate(zip(kernel_size, strides, dilation)):
        pads.append(same_pads(x.shape[1 + axis], k, s, d))
    pads.append((0, 0))
    return np.pad(x, pads, mode="constant", constant_values=value)


def _windows(x, kernel_hw, strides, dilation):
    """Yields (i, j, patch) with patch (n, kh, kw, c) of a 'valid' strided, dilated conv."""
    kh, kw = kernel_hw
    sh, sw = strides
    dh, dw = dilation
    oh = (x.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (x.shape[2] - (kw - 1) * dw - 1) // sw + 1
    for i in range(oh):
        for j in range(ow):
            patch = x[
                :,
                i * sh : i * sh + (kh - 1) * dh + 1 : dh,
                j * sw : j * sw + (kw - 1) * dw + 1 : dw,
                :,
            ]
            yield i, j, oh, ow, patch


def np_conv2d(x, kernel, strides=(1, 1), dilation=(1, 1)):
    """'valid' conv of NHWC ``x`` with an HWIO ``kernel``, in float64."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    out = None
    for i, j, oh, ow, patch in _windows(x, kernel.shape[:2], strides, dilation):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, kernel.shape[-1]))
        out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, kernel)
    return out


def np_depthwise_conv2d(x, kernel, strides=(1, 1), dilation=(1, 1)):
    """'valid' depthwise conv; kernel (kh, kw, cin, multiplier); output channel c * m + k."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    cin, mult = kernel.shape[2:]
    out = None
    for i, j, oh, ow, patch in _windows(x, kernel.shape[:2], strides, dilation):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, cin * mult))
        out[:, i, j, :] = np.einsum("nhwc,hwcm->ncm", patch, kernel).reshape(x.shape[0], cin * mult)
    return out


def np_conv2d_transpose_full(x, kernel, strides):
    """The full (uncropped, 'valid') transposed conv: every input pixel adds
    ``x[n, i, j, :] . kernel[..., o, :]`` into the window at (i*sh, j*sw).
    ``kernel`` is (kh, kw, out channels, in channels) as Keras stores it."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    kh, kw, cout, _ = kernel.shape
    sh, sw = strides
    n, h, w, _ = x.shape
    out = np.zeros((n, (h - 1) * sh + kh, (w - 1) * sw + kw, cout))
    for i in range(h):
        for j in range(w):
            out[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :] += np.einsum(
                "nc,hwoc->nhwo", x[:, i, j, :], kernel
            )
    return out


def np_dorefa_activations(x, bits):
    n = 2.0**bits - 1.0
    return (np.round(np.clip(x, 0.0, 1.0) * n) / n).astype(np.float32)


def np_dorefa_weights(w, bits):
    n = np.float32(2.0**bits - 1.0)
    t = np.tanh(np.asarray(w, np.float32))
    u = t / (2.0 * np.abs(t).max()) + 0.5
    return (2.0 * np.round(u * n) / n - 1.0).astype(np.float32)


def np_scaled_sign(w, keep_axes):
    """XNOR-Net's alpha * sign(w), alpha = mean |w| over every axis not in ``keep_axes``."""
    w = np.asarray(w, np.float32)
    keep = {a % w.ndim for a in keep_axes}
    axes = tuple(a for a in range(w.ndim) if a not in keep)
    return np.abs(w).mean(axis=axes, keepdims=True) * np_sign(w)


def np_ste_tern(w):
    """TWN: delta = 0.7 mean|w|, a = mean |w| over |w| > delta."""
    w = np.asarray(w, np.float32)
    mag = np.abs(w)
    nonzero = mag > 0.7 * mag.mean()
    return np.sign(w) * nonzero * mag[nonzero].mean()


class Reference:
    sign = staticmethod(np_sign)
    same_pads = staticmethod(same_pads)
    pad_same_2d = staticmethod(pad_same_2d)
    conv2d = staticmethod(np_conv2d)
    depthwise_conv2d = staticmethod(np_depthwise_conv2d)
    conv2d_transpose_full = staticmethod(np_conv2d_transpose_full)
    dorefa_activations = staticmethod(np_dorefa_activations)
    dorefa_weights = staticmethod(np_dorefa_weights)
    scaled_sign = staticmethod(np_scaled_sign)
    ste_tern = staticmethod(np_ste_tern)


@pytest.fixture
def ref():
    """Numpy reference implementations (see `Reference`)."""
    return Reference
