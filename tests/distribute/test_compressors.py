"""Gradient compressors on one process: their math against numpy, unbiasedness and
variance, summable payloads, error feedback, bit accounting, configs and dtypes."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from tfqnn.distribute import compressors
from tfqnn.distribute.compressors import (
    QSGD,
    AdaQ,
    DoReFaGrad,
    EFSign,
    Float16,
    OneBitEF,
    PowerSGD,
    SignSGD,
    TernGrad,
    Threshold,
)

EPS32 = float(np.finfo(np.float32).eps)

# The aliases and classes of the issue, and how each exchanges its payload
# (summable integer fields: all-reduce; float factors: linear; else all-gather).
ALIASES = {
    "float16": (Float16, "linear"),
    "onebit_ef": (OneBitEF, "all_gather"),
    "threshold": (Threshold, "all_gather"),
    "qsgd": (QSGD, "all_reduce"),
    "terngrad": (TernGrad, "all_reduce"),
    "dorefa_grad": (DoReFaGrad, "all_reduce"),
    "adaq": (AdaQ, "all_gather"),
    "signsgd": (SignSGD, "all_reduce"),
    "ef_sign": (EFSign, "all_gather"),
    "powersgd": (PowerSGD, "linear"),
}

# One instance of each class (non-default arguments where they exist, small
# buckets so that several buckets and a partial last one occur).
INSTANCES = [
    Float16(),
    OneBitEF(bucket_size=64),
    OneBitEF(bucket_size=64, column_major=False),
    Threshold(tau=0.5, max_density=0.05),
    QSGD(levels=4, bucket_size=64),
    QSGD(levels=1, bucket_size=512),
    TernGrad(clip_sigma=None),
    TernGrad(clip_sigma=2.5),
    DoReFaGrad(bits=4),
    DoReFaGrad(bits=1),
    AdaQ(fraction=0.05),
    SignSGD(majority_vote=True),
    SignSGD(majority_vote=False),
    EFSign(),
    PowerSGD(rank=2),
]


def _ids(values):
    return [repr(v) for v in values]


def _roundtrip(compressor, g, **kwargs):
    g = tf.convert_to_tensor(g)
    return compressor.decompress(compressor.compress(g, **kwargs))


# --- 1. decode(encode(g)) against independent numpy implementations --------------------------


def _sign_plus(x):
    """sign with 0 -> +1 (a 0 is sent as 'not negative')."""
    return np.where(x < 0, -1.0, 1.0)


def _onebit_reference(x, bucket_size):
    out = np.empty_like(x, dtype=np.float64)
    for start in range(0, x.size, bucket_size):
        b = x[start : start + bucket_size].astype(np.float64)
        pos = b >= 0
        mean_pos = b[pos].mean() if pos.any() else 0.0
        mean_neg = b[~pos].mean() if (~pos).any() else 0.0
        out[start : start + bucket_size] = np.where(pos, mean_pos, mean_neg)
    return out


def test_float16_is_a_cast(rng):
    g = (rng.standard_normal((37, 5)) * 10.0 ** rng.integers(-6, 4, (37, 5))).astype(np.float32)
    out = _roundtrip(Float16(), g)
    np.testing.assert_array_equal(out.numpy(), g.astype(np.float16).astype(np.float32))


def test_onebit_reconstructs_bucket_means(rng):
    """Buckets: mixed, all positive, all zero, all negative, and a partial last one."""
    b = 64
    x = rng.standard_normal(4 * b + 17).astype(np.float32)
    x[b : 2 * b] = np.abs(x[b : 2 * b])
    x[b + 3] = 0.0  # a zero counts with the non-negative ones
    x[2 * b : 3 * b] = 0.0
    x[3 * b : 4 * b] = -np.abs(x[3 * b : 4 * b])
    out = _roundtrip(OneBitEF(bucket_size=b), x).numpy()
    np.testing.assert_allclose(out, _onebit_reference(x, b), rtol=1e-6, atol=1e-7)
    assert np.all(out[2 * b : 3 * b] == 0.0)


@pytest.mark.parametrize("bucket_size", [1, 7, 32, 1000])
def test_onebit_bucket_sizes(rng, bucket_size):
    x = rng.standard_normal(333).astype(np.float32)
    out = _roundtrip(OneBitEF(bucket_size=bucket_size), x).numpy()
    np.testing.assert_allclose(out, _onebit_reference(x, bucket_size), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(40, 24), (3, 3, 5, 8)])
def test_onebit_buckets_follow_columns(rng, shape):
    """Column-major: a bucket runs down the kernel's columns (one output unit)."""
    x = rng.standard_normal(shape).astype(np.float32)
    columns = x.reshape(-1, shape[-1]).T  # [units, fan-in]
    expected = _onebit_reference(columns.ravel(), 32).reshape(columns.shape).T.reshape(shape)
    np.testing.assert_allclose(
        _roundtrip(OneBitEF(bucket_size=32), x).numpy(), expected, rtol=1e-6, atol=1e-7
    )
    rows = _roundtrip(OneBitEF(bucket_size=32, column_major=False), x).numpy()
    np.testing.assert_allclose(rows.ravel(), _onebit_reference(x.ravel(), 32), rtol=1e-6, atol=1e-7)


def test_onebit_dead_units_decode_to_zero(rng):
    """A unit without gradient (its column all zero) is sent as exact zeros
    column-major; row-major its zeros take the bucket's positive mean."""
    x = rng.standard_normal((64, 16)).astype(np.float32)
    x[:, [3, 9]] = 0.0
    out = _roundtrip(OneBitEF(bucket_size=64), x).numpy()
    assert np.all(out[:, [3, 9]] == 0.0)
    rows = _roundtrip(OneBitEF(bucket_size=64, column_major=False), x).numpy()
    assert np.all(rows[:, [3, 9]] > 0.0)


def _threshold_reference(x, tau, max_density):
    slots = max(1, math.ceil(max_density * x.size))
    over = np.flatnonzero(np.abs(x) > tau)
    if over.size > slots:  # the largest ones take the slots
        over = np.argsort(-np.abs(x))[:slots]
    out = np.zeros(x.size)
    out[over] = tau * np.sign(x[over])
    return out


@pytest.mark.parametrize("tau", [0.25, 0.05])  # fewer / more elements over tau than slots
def test_threshold_sends_tau_where_exceeded(rng, tau):
    x = (0.1 * rng.standard_normal(1000)).astype(np.float32)
    x[:4] = [0.25, -0.25, 0.2500001, -0.2500001]  # exactly tau is not sent
    c = Threshold(tau=tau, max_density=0.05)
    over = np.sum(np.abs(x) > tau)
    assert (over < 50) == (tau == 0.25)  # the two regimes are really exercised
    out = _roundtrip(c, x).numpy()
    np.testing.assert_allclose(out, _threshold_reference(x, tau, 0.05), rtol=1e-7)
    assert np.count_nonzero(out) == min(over, 50)


def _adaq_reference(x, fraction):
    k = min(x.size, max(1, math.ceil(fraction * x.size / 2)))
    out = np.zeros(x.size)
    for sign in (1.0, -1.0):
        top = np.argsort(-sign * x)[:k]
        top = top[sign * x[top] > 0]
        if top.size:
            out[top] = x[top].mean()
    return out


@pytest.mark.parametrize("case", ["normal", "few_positive", "zeros"])
def test_adaq_top_k_of_each_sign_with_means(rng, case):
    x = rng.standard_normal(301).astype(np.float32)
    if case == "few_positive":  # fewer positives than the k slots of a sign
        x = -np.abs(x)
        x[[3, 50, 77]] = [0.5, 2.0, 1.0]
    elif case == "zeros":
        x[:] = 0.0
    out = _roundtrip(AdaQ(fraction=0.1), x).numpy()
    np.testing.assert_allclose(out, _adaq_reference(x, 0.1), rtol=1e-6, atol=1e-7)
    if case == "few_positive":
        np.testing.assert_allclose(out[[3, 50, 77]], 3.5 / 3, rtol=1e-6)


@pytest.mark.parametrize("majority_vote", [False, True])
def test_signsgd_on_one_worker(rng, majority_vote):
    x = rng.standard_normal(100).astype(np.float32)
    x[::7] = 0.0
    out = _roundtrip(SignSGD(majority_vote=majority_vote), x).numpy()
    np.testing.assert_array_equal(out, _sign_plus(x))


def test_efsign_is_scaled_sign(rng):
    x = rng.standard_normal((17, 9)).astype(np.float32)
    x[0, :3] = 0.0
    out = _roundtrip(EFSign(), x).numpy()
    np.testing.assert_allclose(out, np.abs(x).mean() * _sign_plus(x), rtol=1e-6)


def test_powersgd_factors_follow_algorithm_1(rng):
    c = PowerSGD(rank=3)
    g = rng.standard_normal((30, 20)).astype(np.float32)
    payload = c.compress(tf.constant(g))
    p_hat, q = (t.numpy().astype(np.float64) for t in c.factors(payload))
    assert p_hat.shape == (30, 3) and q.shape == (20, 3)
    np.testing.assert_allclose(p_hat.T @ p_hat, np.eye(3), atol=1e-5)  # orthonormal columns
    np.testing.assert_allclose(q, g.T @ p_hat, rtol=1e-4, atol=1e-5)  # Q = M^T P^
    np.testing.assert_allclose(c.decompress(payload).numpy(), p_hat @ q.T, rtol=1e-4, atol=1e-5)
    # P^ spans M Q0: the decoded matrix is the projection of M on that span
    # (sign-free, so numpy's QR can be used independently).
    basis = np.linalg.qr(g @ c.initial_q(g.shape).numpy())[0]
    np.testing.assert_allclose(
        c.decompress(payload).numpy(), basis @ basis.T @ g, rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_powersgd_is_exact_on_rank_r_matrices_with_warm_start(rng, rank):
    c = PowerSGD(rank=rank)
    m = (rng.standard_normal((48, rank)) @ rng.standard_normal((rank, 36))).astype(np.float32)
    q = None
    for _ in range(3):
        payload = c.compress(tf.constant(m), q=q)
        q = c.factors(payload)[1]
        np.testing.assert_allclose(c.decompress(payload).numpy(), m, atol=1e-4 * np.abs(m).max())


def test_powersgd_warm_start_converges_to_the_best_rank_r(rng):
    """Repeated warm-started power iteration on one matrix finds its truncated SVD."""
    u = np.linalg.qr(rng.standard_normal((40, 6)))[0]
    v = np.linalg.qr(rng.standard_normal((30, 6)))[0]
    m = (u * [10.0, 6.0, 1.0, 0.5, 0.2, 0.1]) @ v.T
    best = (u[:, :2] * [10.0, 6.0]) @ v[:, :2].T
    c = PowerSGD(rank=2)
    q = None
    for _ in range(30):
        payload = c.compress(tf.constant(m, tf.float32), q=q)
        q = c.factors(payload)[1]
    np.testing.assert_allclose(c.decompress(payload).numpy(), best, atol=1e-4)


@pytest.mark.parametrize(
    "shape",
    [
        (10,),
        (4, 4),
        (8, 8),
        (9, 9),
        (256, 2304),
        (3, 3, 16, 32),
        (1, 1000),
        (2, 1000),
        (5, 1000),
        (1000, 4),
    ],
)
@pytest.mark.parametrize("rank", [1, 2])
def test_powersgd_accepts_when_factors_are_smaller(shape, rank):
    """accepts: rank >= 2 and 2 r (n + m) < n m for the [prod(shape[:-1]), shape[-1]] view."""
    n, m = math.prod(shape[:-1]), shape[-1]
    expected = len(shape) >= 2 and 2 * rank * (n + m) < n * m
    assert PowerSGD(rank=rank).accepts(shape) == expected


def _bracket_check(decoded, g, spacing):
    """Each decoded value is one of the two grid points that bracket g."""
    assert np.all(np.abs(decoded - g) <= spacing * (1 + 1e-5) + 1e-7)


def test_qsgd_values_on_grid(rng):
    c = QSGD(levels=4, bucket_size=256)
    g = rng.standard_normal(1000).astype(np.float32)  # 4 buckets, the last one partial
    g[5] = 0.0
    for shared in (False, True):
        norms = np.array(
            [np.linalg.norm(g[i : i + 256].astype(np.float64)) for i in range(0, 1000, 256)]
        )
        stats = 1.5 * norms if shared else None  # a larger shared norm (another worker's)
        payload = c.compress(
            tf.constant(g),
            seed=tf.constant([3, 0]),
            statistics=None if stats is None else tf.constant(stats, tf.float32),
        )
        r = np.repeat(stats if shared else norms, 256)[:1000]
        np.testing.assert_allclose(np.repeat(payload.scales.numpy(), 256)[:1000], r, rtol=1e-5)
        d = c.decompress(payload).numpy().astype(np.float64)
        k = d * 4 / r
        np.testing.assert_allclose(k, np.round(k), atol=1e-4)  # d = r * k / s, integer k
        assert np.all(np.abs(np.round(k)) <= 4)
        assert np.all((np.sign(d) == np.sign(g)) | (d == 0))
        assert d[5] == 0.0
        _bracket_check(d, g, r / 4)


@pytest.mark.parametrize("clip_sigma", [None, 2.5])
def test_terngrad_values_ternary(rng, clip_sigma):
    g = rng.standard_normal(500).astype(np.float32)
    g[:3] = [9.0, -12.0, 0.0]  # outliers that the clipping limits
    c = TernGrad(clip_sigma=clip_sigma)
    payload = c.compress(tf.constant(g), seed=tf.constant([1, 0]))
    gc = g.astype(np.float64)
    if clip_sigma is not None:
        bound = clip_sigma * gc.std()
        gc = np.clip(gc, -bound, bound)
    s = np.abs(gc).max()
    np.testing.assert_allclose(payload.scales.numpy(), [s], rtol=1e-5)
    d = c.decompress(payload).numpy()
    assert set(np.unique(d / payload.scales.numpy()[0])) <= {-1.0, 0.0, 1.0}
    assert np.all((np.sign(d) == np.sign(gc)) | (d == 0))
    assert d[2] == 0.0
    _bracket_check(d, gc, s)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_dorefa_values_on_grid(rng, bits):
    g = rng.standard_normal(500).astype(np.float32)
    c = DoReFaGrad(bits=bits)
    levels = 2**bits - 1
    m = np.abs(g).max()
    payload = c.compress(tf.constant(g), seed=tf.constant([2, 0]))
    np.testing.assert_allclose(payload.scales.numpy(), [m], rtol=1e-7)
    d = c.decompress(payload).numpy().astype(np.float64)
    q = (d / (2 * m) + 0.5) * levels  # d = 2m (q / L - 1/2)
    np.testing.assert_allclose(q, np.round(q), atol=1e-4)
    assert np.all((np.round(q) >= 0) & (np.round(q) <= levels))
    _bracket_check(d, g, 2 * m / levels)


# --- 2. unbiasedness, determinism of the seeds ------------------------------------------------
#
# Vectorised: R copies of g in one tensor give R independent draws, because
# the statistic each method quantises with is the same for every copy (QSGD
# with one bucket per copy; TernGrad's max|g| and its clipping std; DoReFa's
# max|g|). For stochastic rounding between grid points lo <= x <= lo + h the
# variance of one draw is (x - lo)(lo + h - x): the standard error of the
# mean of R draws is sqrt of that over R, and we allow 5 of them.

R = 20_000


def _check_unbiased(draws, target, lo, spacing):
    mean = draws.astype(np.float64).mean(0)
    variance = (target - lo) * (lo + spacing - target)
    se = np.sqrt(np.maximum(variance, 0) / draws.shape[0])
    tol = 5 * se + 1e-5 * np.abs(target).max()
    assert np.all(np.abs(mean - target) <= tol), np.max(np.abs(mean - target) / tol)
    # The test can fail: the draws are not all equal to the target.
    assert np.max(se) > 0


@pytest.mark.parametrize("shared", [False, True])
def test_qsgd_unbiased(rng, shared):
    n, s = 50, 4
    g = rng.standard_normal(n)
    g[0] = 0.0
    g32 = g.astype(np.float32)
    norm = np.linalg.norm(g32.astype(np.float64))
    r = 1.7 * norm if shared else norm  # a shared norm from a larger worker
    c = QSGD(levels=s, bucket_size=n)
    tiled = tf.constant(np.tile(g32, R))
    stats = tf.fill([R], tf.constant(r, tf.float32)) if shared else None
    draws = c.decompress(c.compress(tiled, statistics=stats, seed=tf.constant([5, 0])))
    h = r / s
    x = np.abs(g32).astype(np.float64)
    # The grid of |g| (levels k h); a draw is sign(g) times a point of it.
    draws = draws.numpy().reshape(R, n) * _sign_plus(g32)
    _check_unbiased(draws, x, np.floor(x / h) * h, h)


@pytest.mark.parametrize("clip_sigma", [None, 2.5])
def test_terngrad_unbiased_for_the_clipped_gradient(rng, clip_sigma):
    n = 50
    g = rng.standard_normal(n).astype(np.float32)
    g[:2] = [6.0, -8.0]  # clipped at 2.5 sigma
    c = TernGrad(clip_sigma=clip_sigma)
    assert c.unbiased == (clip_sigma is None)
    target = g.astype(np.float64)
    if clip_sigma is not None:
        bound = clip_sigma * target.std()
        assert bound < 6.0
        target = np.clip(target, -bound, bound)
    s = np.abs(target).max()
    draws = _roundtrip(c, np.tile(g, R), seed=tf.constant([6, 0])).numpy().reshape(R, n)
    _check_unbiased(draws * _sign_plus(target), np.abs(target), 0.0, s)


@pytest.mark.parametrize("bits", [1, 3])
def test_dorefa_unbiased(rng, bits):
    n = 50
    g = rng.standard_normal(n).astype(np.float32)
    m, levels = np.abs(g).max(), 2**bits - 1
    h = 2 * m / levels
    position = (g.astype(np.float64) / (2 * m) + 0.5) * levels
    lo = 2 * m * (np.floor(position) / levels - 0.5)
    draws = _roundtrip(DoReFaGrad(bits=bits), np.tile(g, R), seed=tf.constant([7, 0]))
    _check_unbiased(draws.numpy().reshape(R, n), g.astype(np.float64), lo, h)


@pytest.mark.parametrize("compressor", [QSGD(levels=2), TernGrad(), DoReFaGrad(bits=2)], ids=repr)
def test_stateless_seeds(rng, compressor):
    """A fixed seed gives the same payload; other seeds (and seed=None) give others."""
    g = tf.constant(rng.standard_normal(1000).astype(np.float32))

    def words(seed):
        return compressor.compress(g, seed=seed).words.numpy()

    first = words(tf.constant([1, 0]))
    np.testing.assert_array_equal(first, words(tf.constant([1, 0])))
    assert not np.array_equal(first, words(tf.constant([2, 0])))
    assert not np.array_equal(first, words(tf.constant([1, 1])))
    assert not np.array_equal(words(None), words(None))


def test_stateless_draws_average_to_g(rng):
    """The loop a worker runs: a fresh stateless seed per step, unbiased mean."""
    n, draws = 64, 4000
    g = tf.constant(rng.standard_normal(n).astype(np.float32))
    c = QSGD(levels=2, bucket_size=n)

    @tf.function
    def total():
        def body(i, acc):
            return i + 1, acc + _roundtrip(c, g, seed=tf.stack([i, 0]))

        return tf.while_loop(lambda i, acc: i < draws, body, (0, tf.zeros([n])))[1]

    g64 = g.numpy().astype(np.float64)
    h = np.linalg.norm(g64) / 2
    x = np.abs(g64)
    lo = np.floor(x / h) * h
    se = np.sqrt((x - lo) * (lo + h - x) / draws)
    np.testing.assert_array_less(np.abs(total().numpy() / draws - g64), 5 * se + 1e-5)


# --- 3. QSGD's variance bound -----------------------------------------------------------------


@pytest.mark.parametrize(
    "n, s, kind",
    [(16, 1, "flat"), (64, 2, "normal"), (4, 8, "normal"), (100, 10, "flat"), (512, 4, "normal")],
)
def test_qsgd_variance_bound(rng, n, s, kind):
    """E||Q(v) - v||^2 <= min(n / s^2, sqrt(n) / s) ||v||^2 (Alistarh et al., Lemma 3.1).

    "flat" vectors (equal magnitudes, random signs) come close to the bound.
    The estimate over R draws is compared with the exact expectation
    (sum of the per-element Bernoulli variances) within 5 standard errors.
    """
    v = rng.standard_normal(n) if kind == "normal" else _sign_plus(rng.standard_normal(n))
    v = v.astype(np.float32)
    draws = max(2000, 400_000 // n)
    out = _roundtrip(QSGD(levels=s, bucket_size=n), np.tile(v, draws), seed=tf.constant([8, 0]))
    errors = ((out.numpy().reshape(draws, n) - v) ** 2).sum(1)
    estimate, se = errors.mean(), errors.std() / np.sqrt(draws)
    v64 = v.astype(np.float64)
    norm2 = (v64**2).sum()
    h = np.sqrt(norm2) / s
    x = np.abs(v64)
    lo = np.floor(x / h + 1e-9) * h
    expected = ((x - lo) * (lo + h - x)).sum()
    assert abs(estimate - expected) <= 5 * se + 1e-5 * norm2
    bound = min(n / s**2, np.sqrt(n) / s) * norm2
    assert estimate <= bound


# --- 4. summable payloads ---------------------------------------------------------------------

SUMMABLE = [
    QSGD(levels=4, bucket_size=100),
    QSGD(levels=1, bucket_size=512),
    TernGrad(clip_sigma=None),
    TernGrad(clip_sigma=2.5),
    DoReFaGrad(bits=2),
    DoReFaGrad(bits=8),
    SignSGD(majority_vote=True),
    SignSGD(majority_vote=False),
]


def _compress_workers(c, grads, seeds=True):
    """Each worker compresses with the shared statistics (maximum of the local ones)."""
    P = len(grads)
    stats = np.max([c.local_statistics(tf.constant(g)).numpy() for g in grads], axis=0)
    assert stats.shape == (c.num_statistics(grads[0].shape),)
    return [
        c.compress(
            tf.constant(g),
            statistics=tf.constant(stats, tf.float32),
            num_workers=P,
            seed=tf.constant([i, 11]) if seeds else None,
        )
        for i, g in enumerate(grads)
    ]


def _summed(payloads):
    words = np.sum([p.words.numpy() for p in payloads], axis=0, dtype=np.int32)
    return dataclasses.replace(payloads[0], words=tf.constant(words), count=len(payloads)), words


@pytest.mark.parametrize("P", [2, 4, 8])
@pytest.mark.parametrize("compressor", SUMMABLE, ids=repr)
def test_summed_payload_decodes_to_the_sum(rng, compressor, P):
    assert compressor.collective == "all_reduce" and compressor.summable
    n = 333
    scales = 10.0 ** rng.uniform(-2, 1, P)  # the workers' gradients differ in size
    grads = [(sc * rng.standard_normal(n)).astype(np.float32) for sc in scales]
    if isinstance(compressor, SignSGD):  # ties: half the workers negative
        for i, g in enumerate(grads):
            g[:10] = -1.0 if i < P // 2 else 1.0
    payloads = _compress_workers(compressor, grads)
    summed, words = _summed(payloads)
    assert np.all(words >= 0)  # no field overflowed into the sign bit
    total = compressor.decompress(summed).numpy().astype(np.float64)
    each = np.array([compressor.decompress(p).numpy() for p in payloads], np.float64)
    if isinstance(compressor, SignSGD):
        votes = np.sum([_sign_plus(g) for g in grads], axis=0)
        np.testing.assert_array_equal(each.sum(0), votes)
        expected = np.sign(votes) if compressor.majority_vote else votes / P
        np.testing.assert_array_equal(total, expected)
        assert np.all(total[:10] == 0.0)
    else:
        scale = np.abs(each).max()
        np.testing.assert_allclose(total, each.sum(0), rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("P", [2, 8])
@pytest.mark.parametrize("compressor", SUMMABLE, ids=repr)
def test_fields_hold_the_largest_sum(compressor, P):
    """Every worker sends the largest integer in one field: the sum must not overflow."""
    n = 70
    g = np.zeros(n, np.float32)
    if isinstance(compressor, SignSGD):
        g[:] = -1.0  # every worker votes negative: the count of negatives is P
    else:
        g[0] = 3.0  # |g_0| is the norm / the maximum: sent as the top level for sure
    payloads = _compress_workers(compressor, [g] * P)
    summed, _ = _summed(payloads)
    total = compressor.decompress(summed).numpy()
    if isinstance(compressor, SignSGD):
        np.testing.assert_array_equal(total, -1.0)  # sign(P - 2P), and the mean (P - 2P) / P
        return
    top = 3.0
    if getattr(compressor, "clip_sigma", None) is not None:  # TernGrad clips g_0 first
        top = compressor.clip_sigma * g.astype(np.float64).std()
    np.testing.assert_allclose(total[0], top * P, rtol=1e-5)
    if not isinstance(compressor, DoReFaGrad):  # DoReFa rounds the zeros stochastically
        assert np.all(total[1:] == 0.0)


@pytest.mark.parametrize("P", [2, 4, 8])
def test_float16_values_add(rng, P):
    c = Float16()
    assert c.collective == "linear" and c.summable
    grads = [rng.standard_normal(100).astype(np.float32) for _ in range(P)]
    payloads = [c.compress(tf.constant(g), num_workers=P) for g in grads]
    values = tf.add_n([p.values for p in payloads])
    assert values.dtype == tf.float16
    total = c.decompress(dataclasses.replace(payloads[0], values=values, count=P)).numpy()
    halves = np.array([g.astype(np.float16) for g in grads], np.float64)
    # Each float16 addition rounds by at most 2^-11 of its partial sum.
    tolerance = P * 2**-11 * np.abs(halves).sum(0)
    assert np.all(np.abs(total - halves.sum(0)) <= tolerance)


# --- 5. error feedback ------------------------------------------------------------------------

EF = [
    (OneBitEF(bucket_size=64), (1000,)),
    # bounded while tau exceeds every element's mean drift (0.3 * max|N(0,1)| ~ 1)
    (Threshold(tau=2.0, max_density=0.3), (1000,)),
    (AdaQ(fraction=0.1), (1000,)),
    (EFSign(), (1000,)),
    (PowerSGD(rank=2), (40, 25)),
]


@pytest.mark.parametrize("compressor, shape", EF, ids=_ids([c for c, _ in EF]))
def test_error_feedback_residual_stays_bounded(rng, compressor, shape):
    """p = g_t + e; d = D(C(p)); e = p - d over 200 steps of g_t = mu + noise.

    The gradients share a mean direction, so without sending anything the
    residual would grow linearly (||sum g_t|| is about 55 max||g_t||).
    Asserted: sum d_t = sum g_t - e_T, ||e_t|| <= 5 max||g_t|| at every step,
    and ||e_200|| < 2 ||e_50|| (linear growth would give 4, sqrt(T) growth 2).
    """
    assert compressor.error_feedback
    steps = 200
    mean = 0.3 * rng.standard_normal(shape)
    grads = (mean + rng.standard_normal((steps,) + shape)).astype(np.float32)
    power = isinstance(compressor, PowerSGD)

    @tf.function
    def step(g, e, q):
        p = g + e
        payload = compressor.compress(p, q=q) if power else compressor.compress(p)
        d = compressor.decompress(payload)
        return d, p - d, compressor.factors(payload)[1] if power else q

    e = tf.zeros(shape)
    q = compressor.initial_q(shape) if power else tf.zeros([1])
    applied = np.zeros(shape)
    norms, largest = [], 0.0
    for g in grads:
        d, e, q = step(tf.constant(g), e, q)
        assert d.shape == shape and d.dtype == tf.float32
        applied += d.numpy()
        norms.append(np.linalg.norm(e.numpy()))
        largest = max(largest, np.abs(e.numpy()).max() + np.abs(g).max())
    total = grads.astype(np.float64).sum(0)
    np.testing.assert_allclose(applied + e.numpy(), total, atol=4 * steps * EPS32 * largest)
    g_max = np.linalg.norm(grads.reshape(steps, -1), axis=1).max()
    assert np.linalg.norm(total) > 40 * g_max  # the drift the residual must keep up with
    assert max(norms) <= 5 * g_max
    assert norms[-1] < 2 * norms[49]


# --- 6. bits ----------------------------------------------------------------------------------

SHAPES = [(1,), (31,), (33,), (100,), (513,), (1000,), (3, 3, 5, 7), (64, 48)]


def _width(max_sum):
    return math.ceil(math.log2(max_sum + 1))


def _field_words(n, max_sum):
    return math.ceil(n / (31 // _width(max_sum)))


def _expected_payload_bits(c, shape, P):
    """Payload bits from each class's documented wire format (statistics excluded)."""
    n = math.prod(shape)
    if isinstance(c, Float16):
        return 16 * n
    if isinstance(c, OneBitEF):
        return 32 * math.ceil(n / 32) + 64 * math.ceil(n / c.bucket_size)
    if isinstance(c, Threshold):
        return 32 * max(1, math.ceil(c.max_density * n))
    if isinstance(c, AdaQ):
        return 64 * min(n, max(1, math.ceil(c.fraction * n / 2))) + 64
    if isinstance(c, QSGD):
        return 32 * _field_words(n, 2 * c.levels * P)
    if isinstance(c, TernGrad):
        return 32 * _field_words(n, 2 * P)
    if isinstance(c, DoReFaGrad):
        return 32 * _field_words(n, (2**c.bits - 1) * P)
    if isinstance(c, SignSGD):
        return 32 * _field_words(n, P)
    if isinstance(c, EFSign):
        return 32 * math.ceil(n / 32) + 32
    if isinstance(c, PowerSGD):
        return 32 * c.rank * (math.prod(shape[:-1]) + shape[-1])
    raise AssertionError(c)


def _expected_statistics(c, shape):
    if isinstance(c, QSGD):
        return math.ceil(math.prod(shape) / c.bucket_size)
    return 1 if isinstance(c, (TernGrad, DoReFaGrad)) else 0


@pytest.mark.parametrize("compressor", INSTANCES, ids=repr)
def test_payload_bits(rng, compressor):
    shapes = [s for s in SHAPES if compressor.accepts(s)]
    assert len(shapes) >= 2
    for shape in shapes:
        g = tf.constant(rng.standard_normal(shape).astype(np.float32))
        stats = compressor.num_statistics(shape)
        assert stats == _expected_statistics(compressor, shape)
        assert compressor.local_statistics(g).shape == (stats,)
        for P in (1, 2, 4, 8):
            payload = compressor.compress(g, num_workers=P)
            assert payload.words.dtype == tf.int32 and payload.scales.dtype == tf.float32
            bits = compressor.payload_bits(shape, P)
            assert bits == _expected_payload_bits(compressor, shape, P), (shape, P)
            assert payload.num_bits == bits + 32 * stats, (shape, P)


@pytest.mark.parametrize("compressor", INSTANCES, ids=repr)
def test_bits_per_element_formula(compressor):
    cls_collective = {cls: collective for cls, collective in ALIASES.values()}
    collective = cls_collective[type(compressor)]
    assert compressor.collective == collective
    for shape in [s for s in SHAPES if compressor.accepts(s)] + [None]:
        full = (1024, 1024) if shape is None else shape
        n = math.prod(full)
        for P in (1, 2, 4, 8):
            factor = P - 1 if collective == "all_gather" else 2 * (P - 1) / P
            expected = (
                factor * _expected_payload_bits(compressor, full, P)
                + 32 * (P - 1) * _expected_statistics(compressor, full)
            ) / n
            assert compressor.bits_per_element(P, shape) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "compressor, shape, P, documented, digits",
    [
        (Float16(), None, 4, 24.0, 2),  # fp16 AR 24 / 28
        (Float16(), None, 8, 28.0, 2),
        (OneBitEF(), None, 4, 3 * (1 + 64 / 512), 4),  # 1-bit AG 3 / 7, plus the 2 floats
        (OneBitEF(), None, 8, 7 * (1 + 64 / 512), 4),
        (PowerSGD(rank=2), (256, 2304), 4, 0.42, 2),  # PowerSGD r=2 256x2304: 0.42 / 0.49
        (PowerSGD(rank=2), (256, 2304), 8, 0.49, 2),
        (TernGrad(), None, 8, 9.3, 1),  # TernGrad AR .. / 9.3
        (DoReFaGrad(bits=4), None, 4, 9.6, 2),  # DoReFa k=4 AR 9.6 / 14
        (DoReFaGrad(bits=4), None, 8, 14.0, 2),
        (SignSGD(), None, 4, 4.8, 2),  # signSGD AR 4.8 / ..
        (Threshold(max_density=0.01), None, 4, 32 * 0.01 * 3, 2),  # 32 f (P - 1)
        (EFSign(), None, 8, 7.0, 3),  # EF-SignSGD AG 3 / 7
    ],
)
def test_documented_bits_per_element(compressor, shape, P, documented, digits):
    """Figures worked out by hand from each payload's layout (the comments); the
    1024 x 1024 ones are those of the table in docs/distribute.md."""
    assert round(compressor.bits_per_element(P, shape), digits) == round(documented, digits)


@pytest.mark.parametrize("P, documented", [(4, 9.6), (8, 14.0)])
def test_documented_qsgd_fields(P, documented):
    """QSGD s=4 'fields + shared scale in AR 9.6 / 14': the fields, without the norms."""
    c = QSGD()
    norms = 32 * (P - 1) * c.num_statistics((1024, 1024)) / 1024**2
    assert round(c.bits_per_element(P) - norms, 2) == documented


# --- 7. configs, aliases, argument checks -----------------------------------------------------


@pytest.mark.parametrize("compressor", INSTANCES + [PowerSGD(rank=3, seed=7)], ids=repr)
def test_config_round_trip(compressor):
    config = compressor.get_config()
    again = type(compressor).from_config(config)
    assert type(again) is type(compressor) and again.get_config() == config
    assert again == compressor and hash(again) == hash(compressor)


@pytest.mark.parametrize("compressor", INSTANCES, ids=repr)
def test_serialize_deserialize_round_trip(compressor):
    config = compressors.serialize(compressor)
    assert config["class_name"] == type(compressor).__name__
    again = compressors.deserialize(config)
    assert type(again) is type(compressor) and again == compressor
    assert compressors.get(config) == compressor


@pytest.mark.parametrize("alias", list(ALIASES))
def test_get_by_alias_and_class_name(alias):
    cls, _ = ALIASES[alias]
    for name in (alias, cls.__name__):
        c = compressors.get(name)
        assert type(c) is cls and c == cls()
        assert compressors.deserialize(name) == cls()
    instance = cls()
    assert compressors.get(instance) is instance


def test_alias_defaults():
    """The defaults the issue's table names."""
    assert compressors.get("onebit_ef").bucket_size == 512
    assert (compressors.get("qsgd").levels, compressors.get("qsgd").bucket_size) == (4, 512)
    assert compressors.get("terngrad").clip_sigma == 2.5
    assert compressors.get("signsgd").majority_vote is True
    assert set(compressors.ALIASES) == set(ALIASES)


@pytest.mark.parametrize("identifier", ["qsdg", "QSGD()", 3, None])
def test_get_rejects_unknown(identifier):
    with pytest.raises(ValueError, match="Invalid compressor.*onebit_ef"):
        compressors.get(identifier)


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: OneBitEF(bucket_size=0), "bucket_size"),
        (lambda: OneBitEF(column_major="yes"), "column_major"),
        (lambda: QSGD(bucket_size=0), "bucket_size"),
        (lambda: Threshold(tau=-1), "tau"),
        (lambda: Threshold(tau=0), "tau"),
        (lambda: Threshold(max_density=2), "max_density"),
        (lambda: Threshold(max_density=0), "max_density"),
        (lambda: QSGD(levels=0), "levels"),
        (lambda: QSGD(levels=2.5), "levels"),
        (lambda: TernGrad(clip_sigma=0), "clip_sigma"),
        (lambda: TernGrad(clip_sigma=float("nan")), "clip_sigma"),
        (lambda: DoReFaGrad(bits=0), "bits"),
        (lambda: DoReFaGrad(bits=17), "bits"),
        (lambda: AdaQ(fraction=0), "fraction"),
        (lambda: AdaQ(fraction=1.5), "fraction"),
        (lambda: PowerSGD(rank=0), "rank"),
        (lambda: PowerSGD(seed=-1), "seed"),
        (lambda: SignSGD(majority_vote=1), "majority_vote"),
    ],
)
def test_invalid_arguments(make, argument):
    with pytest.raises(ValueError, match=f"Invalid {argument}="):
        make()


def test_class_attributes():
    """Which methods are unbiased, stochastic and keep error-feedback residuals."""
    stochastic = {QSGD, TernGrad, DoReFaGrad}
    feedback = {OneBitEF, Threshold, AdaQ, EFSign, PowerSGD}
    for c in INSTANCES:
        unbiased = type(c) in (QSGD, DoReFaGrad) or c == TernGrad(clip_sigma=None)
        assert c.unbiased == unbiased, c
        assert c.stochastic == (type(c) in stochastic), c
        assert c.error_feedback == (type(c) in feedback), c
        assert c.summable == (c.collective in ("all_reduce", "linear")), c


# --- 8. dtypes and shapes ---------------------------------------------------------------------


def _same_draw_kwargs(c):
    return {"seed": tf.constant([4, 2])} if c.stochastic else {}


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("compressor", INSTANCES, ids=repr)
def test_low_precision_gradients(rng, compressor, dtype):
    """Decoded in the gradient's dtype; the same as compressing its float32 value."""
    g = tf.cast(tf.constant(rng.standard_normal((24, 20)).astype(np.float32)), dtype)
    out = _roundtrip(compressor, g, **_same_draw_kwargs(compressor))
    assert out.dtype == dtype and out.shape == g.shape
    reference = tf.cast(
        _roundtrip(compressor, tf.cast(g, tf.float32), **_same_draw_kwargs(compressor)), dtype
    )
    np.testing.assert_array_equal(
        tf.cast(out, tf.float32).numpy(), tf.cast(reference, tf.float32).numpy()
    )


@pytest.mark.parametrize("compressor", INSTANCES, ids=repr)
def test_conv_kernel_shape(rng, compressor):
    """A [3, 3, 16, 32] kernel is coded like its flat vector (PowerSGD: its 144 x 32
    matrix; column-major OneBitEF: the flat vector of its 32 columns)."""
    shape = (3, 3, 16, 32)
    g = rng.standard_normal(shape).astype(np.float32)
    assert compressor.accepts(shape)
    payload = compressor.compress(tf.constant(g), **_same_draw_kwargs(compressor))
    assert payload.shape == shape
    out = compressor.decompress(payload)
    assert out.shape == shape and out.dtype == tf.float32
    view = g.reshape(144, 32) if isinstance(compressor, PowerSGD) else g.reshape(-1)
    columns = isinstance(compressor, OneBitEF) and compressor.column_major
    if columns:
        view = g.reshape(144, 32).T.ravel()
    flat = _roundtrip(compressor, view, **_same_draw_kwargs(compressor)).numpy()
    if columns:
        flat = flat.reshape(32, 144).T
    np.testing.assert_array_equal(out.numpy().reshape(flat.shape), flat)
    assert np.abs(out.numpy()).max() > 0


@pytest.mark.parametrize("compressor", INSTANCES, ids=repr)
def test_decompress_sum_adds_the_decompressed_payloads(rng, compressor):
    """What the all-gather exchange uses: bit for bit the sum of `decompress`."""
    shape = (48, 40)
    payloads = [
        compressor.compress(
            tf.constant(rng.standard_normal(shape).astype(np.float32)),
            **_same_draw_kwargs(compressor),
        )
        for _ in range(3)
    ]
    expected = sum(compressor.decompress(q).numpy() for q in payloads)
    total = compressor.decompress_sum(payloads)
    assert total.shape == shape
    np.testing.assert_array_equal(total.numpy(), expected)
