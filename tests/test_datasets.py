"""tfqnn.datasets: the bundled digits, Fashion-MNIST from Debian's package, and IDX files."""

import gzip
import os
import struct

import numpy as np
import pytest

import tfqnn
from tfqnn import datasets

# --------------------------------------------------------------------------
# load_digits
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()


def test_digits_shapes_and_types(digits):
    (x_train, y_train), (x_test, y_test) = digits
    assert x_train.shape == (1347, 8, 8) and x_test.shape == (450, 8, 8)
    assert y_train.shape == (1347,) and y_test.shape == (450,)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (y_train, y_test):
        assert set(np.unique(y)) == set(range(10))


def test_digits_split_is_stratified(digits):
    (_, y_train), (_, y_test) = digits
    train_counts = np.bincount(y_train, minlength=10)
    test_counts = np.bincount(y_test, minlength=10)
    totals = train_counts + test_counts
    assert totals.sum() == 1797
    # Each class is split 75 / 25 up to rounding.
    assert np.all(np.abs(test_counts - 0.25 * totals) <= 1.0), (test_counts, totals)


def test_digits_is_a_partition_of_sklearn_digits(digits):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    reference = sklearn_datasets.load_digits()
    (x_train, y_train), (x_test, y_test) = digits
    ours = np.concatenate([x_train, x_test]).reshape(-1, 64) * 16.0
    labels = np.concatenate([y_train, y_test])
    theirs = reference.images.reshape(-1, 64)

    def rows(x, y):
        return sorted(tuple(r) + (int(c),) for r, c in zip(np.rint(x).astype(int), y))

    assert rows(ours, labels) == rows(theirs, reference.target)


def test_digits_are_deterministic(digits):
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    np.testing.assert_array_equal(x_train, digits[0][0])
    np.testing.assert_array_equal(y_train, digits[0][1])
    np.testing.assert_array_equal(x_test, digits[1][0])
    np.testing.assert_array_equal(y_test, digits[1][1])


def test_digits_not_normalized(digits):
    (x_train, y_train), (x_test, y_test) = datasets.load_digits(normalize=False)
    assert np.issubdtype(x_train.dtype, np.integer)
    assert x_train.min() == 0 and x_train.max() == 16
    assert set(np.unique(x_test)) <= set(range(17))
    # Same images, same split: normalize only divides by 16.
    np.testing.assert_array_equal(x_train.astype(np.float32) / 16.0, digits[0][0])
    np.testing.assert_array_equal(y_test, digits[1][1])


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------


def idx_bytes(array, type_byte=0x08):
    """An IDX file written from the format: 0, 0, type, ndim, big-endian uint32 dims, data."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    return header + array.tobytes()


def write(path, data, gz):
    path = str(path) + (".gz" if gz else "")
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (0, 28, 28)])
def test_read_idx(tmp_path, gz, shape):
    array = np.arange(np.prod(shape), dtype=np.int64).reshape(shape) * 7 % 256
    path = write(tmp_path / "data-idx", idx_bytes(array), gz)
    result = datasets.read_idx(path)
    assert result.dtype == np.uint8
    assert result.shape == shape
    np.testing.assert_array_equal(result, array)


def test_read_idx_large_dimension(tmp_path):
    """A dimension >= 256 needs more than one byte of the big-endian header."""
    array = (np.arange(300 * 2) % 251).reshape(300, 2)
    path = write(tmp_path / "big-idx", idx_bytes(array), gz=True)
    np.testing.assert_array_equal(datasets.read_idx(path), array)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: b"\x00\x01\x08\x01" + struct.pack(">I", 2) + b"ab",  # bad magic
        lambda: b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab",  # bad magic
        lambda: idx_bytes(np.zeros(4), type_byte=0x0D),  # float32 type, not unsigned bytes
        lambda: b"\x00\x00",  # shorter than the magic
        lambda: b"",  # empty
        lambda: b"\x00\x00\x08\x03" + struct.pack(">I", 2),  # truncated header
        lambda: idx_bytes(np.zeros((3, 4)))[:-1],  # truncated data
        lambda: idx_bytes(np.zeros((3, 4))) + b"\x00",  # trailing bytes
    ],
    ids=["magic0", "magic1", "type", "short", "empty", "header", "truncated", "trailing"],
)
def test_read_idx_malformed(tmp_path, gz, make):
    path = write(tmp_path / "bad-idx", make(), gz)
    with pytest.raises(ValueError):
        datasets.read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    good = tmp_path / "good-idx.gz"
    write(tmp_path / "good-idx", idx_bytes(np.ones((4, 4))), gz=True)
    data = good.read_bytes()
    truncated = tmp_path / "truncated-idx.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        datasets.read_idx(str(truncated))
    not_gzip = tmp_path / "not-gzip-idx.gz"
    not_gzip.write_bytes(idx_bytes(np.ones((4, 4))))  # plain bytes under a .gz name
    with pytest.raises(ValueError):
        datasets.read_idx(str(not_gzip))


def test_read_idx_missing_file_raises(tmp_path):
    with pytest.raises((ValueError, FileNotFoundError, OSError)):
        datasets.read_idx(str(tmp_path / "missing-idx"))


# --------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------


def _fake_fashion_mnist(directory, n_train=6, n_test=4, rng=None):
    rng = rng or np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28)),
        "y_train": np.arange(n_train) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28)),
        "y_test": (np.arange(n_test) * 3) % 10,
    }
    for key, name in datasets.FASHION_MNIST_FILES.items():
        with gzip.open(os.path.join(directory, name), "wb") as f:
            f.write(idx_bytes(arrays[key]))
    return arrays


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("TFQNN_FASHION_MNIST_DIR", raising=False)
    assert not datasets.fashion_mnist_available(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        datasets.load_fashion_mnist(path=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_fashion_mnist_from_path(tmp_path, monkeypatch):
    monkeypatch.delenv("TFQNN_FASHION_MNIST_DIR", raising=False)
    arrays = _fake_fashion_mnist(str(tmp_path))
    assert datasets.fashion_mnist_available(str(tmp_path))
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(path=str(tmp_path))
    assert x_train.dtype == np.float32 and x_train.shape == (6, 28, 28)
    np.testing.assert_allclose(x_train, arrays["x_train"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(x_test, arrays["x_test"] / 255.0, rtol=1e-6)
    assert y_train.dtype == np.int64
    np.testing.assert_array_equal(y_train, arrays["y_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    (raw, _), _ = datasets.load_fashion_mnist(path=str(tmp_path), normalize=False)
    assert raw.dtype == np.uint8
    np.testing.assert_array_equal(raw, arrays["x_train"])


def test_fashion_mnist_from_environment_variable(tmp_path, monkeypatch):
    arrays = _fake_fashion_mnist(str(tmp_path))
    monkeypatch.setenv("TFQNN_FASHION_MNIST_DIR", str(tmp_path))
    (_, y_train), _ = datasets.load_fashion_mnist()
    np.testing.assert_array_equal(y_train, arrays["y_train"])


def test_fashion_mnist_length_mismatch_raises(tmp_path):
    _fake_fashion_mnist(str(tmp_path))
    with gzip.open(os.path.join(str(tmp_path), datasets.FASHION_MNIST_FILES["y_train"]), "wb") as f:
        f.write(idx_bytes(np.zeros(5)))  # 6 images, 5 labels
    with pytest.raises(ValueError):
        datasets.load_fashion_mnist(path=str(tmp_path))


def test_fashion_mnist_classes():
    assert len(datasets.FASHION_MNIST_CLASSES) == 10
    assert datasets.FASHION_MNIST_CLASSES[0] == "T-shirt/top"
    assert datasets.FASHION_MNIST_CLASSES[9] == "Ankle boot"


@pytest.fixture(scope="module")
def fashion_mnist():
    if not datasets.fashion_mnist_available(datasets.FASHION_MNIST_DIR):
        pytest.skip(f"Fashion-MNIST is not installed in {datasets.FASHION_MNIST_DIR}")
    return datasets.load_fashion_mnist(path=datasets.FASHION_MNIST_DIR)


def test_fashion_mnist_installed(fashion_mnist):
    (x_train, y_train), (x_test, y_test) = fashion_mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.float32
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0 and x_train.max() == 1.0
    assert np.array_equal(np.bincount(y_train, minlength=10), np.full(10, 6000))
    assert np.array_equal(np.bincount(y_test, minlength=10), np.full(10, 1000))
    # Values are multiples of 1/255.
    sample = x_test[:50] * 255.0
    np.testing.assert_allclose(sample, np.rint(sample), atol=1e-3)


def test_tfqnn_exports_datasets():
    assert tfqnn.datasets is datasets


def test_fashion_mnist_path_argument_overrides_environment_variable(tmp_path, monkeypatch):
    given, from_env = tmp_path / "given", tmp_path / "env"
    given.mkdir()
    from_env.mkdir()
    arrays = _fake_fashion_mnist(str(given), n_train=6)
    _fake_fashion_mnist(str(from_env), n_train=8)
    monkeypatch.setenv(datasets.FASHION_MNIST_ENV, str(from_env))
    (_, y_train), _ = datasets.load_fashion_mnist(path=given)  # a Path works too
    np.testing.assert_array_equal(y_train, arrays["y_train"])
    assert len(datasets.load_fashion_mnist()[0][0]) == 8  # the variable, without path=


def test_fashion_mnist_availability_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.FASHION_MNIST_ENV, str(tmp_path))
    assert not datasets.fashion_mnist_available()
    with pytest.raises(FileNotFoundError, match=datasets.FASHION_MNIST_ENV) as info:
        datasets.load_fashion_mnist()
    assert str(tmp_path) in str(info.value)
    _fake_fashion_mnist(str(tmp_path))
    assert datasets.fashion_mnist_available()


def test_fashion_mnist_default_folder_is_debians(monkeypatch):
    monkeypatch.delenv(datasets.FASHION_MNIST_ENV, raising=False)
    assert datasets.FASHION_MNIST_DIR == "/usr/share/datasets/fashion-mnist"
    assert datasets.fashion_mnist_available() == all(
        os.path.isfile(os.path.join(datasets.FASHION_MNIST_DIR, name))
        for name in datasets.FASHION_MNIST_FILES.values()
    )
