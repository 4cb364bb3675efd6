"""Offline data sets: nothing is downloaded at run time.

Both loaders return ``(x_train, y_train), (x_test, y_test)`` as
`keras.datasets` does, with images as float32 in [0, 1] (``normalize=True``)
or as the raw integers (``normalize=False``).

Fashion-MNIST is read from the folder given as ``path=``, else from the
environment variable ``TFQNN_FASHION_MNIST_DIR``, else from
``FASHION_MNIST_DIR``, where Debian's package ``dataset-fashion-mnist``
installs it.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
PathLike = str | os.PathLike[str]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "TFQNN_FASHION_MNIST_DIR"
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load_digits(normalize: bool = True) -> Arrays:
    """scikit-learn's bundled 8x8 handwritten digits, with a fixed split.

    1,797 images of the UCI optdigits test set, split 1,347 / 450 (75 / 25 %,
    stratified by class, ``random_state=0``). Images have shape (8, 8) with
    values 0..16, divided by 16 when ``normalize``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``; labels are int64 in 0..9.

    Raises:
        ImportError: when scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "tfqnn.datasets.load_digits needs scikit-learn: "
            "pip install 'tfqnn[data]' (or pip install scikit-learn)."
        ) from error
    digits = sklearn_digits()
    images = (
        digits.images.astype(np.float32) / 16.0 if normalize else digits.images.astype(np.uint8)
    )
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, stratify=labels, random_state=0
    )
    return (x_train, y_train), (x_test, y_test)


def fashion_mnist_available(path: PathLike | None = None) -> bool:
    """Whether the Fashion-MNIST files are in the folder `load_fashion_mnist` reads."""
    directory = _fashion_mnist_dir(path)
    return all(os.path.isfile(os.path.join(directory, f)) for f in FASHION_MNIST_FILES.values())


def load_fashion_mnist(path: PathLike | None = None, normalize: bool = True) -> Arrays:
    """The full Fashion-MNIST (60,000 train / 10,000 test 28x28 images, 10 classes).

    Reads the four IDX files (names in ``FASHION_MNIST_FILES``) from
    ``path``, else from ``$TFQNN_FASHION_MNIST_DIR``, else from
    ``FASHION_MNIST_DIR`` (``/usr/share/datasets/fashion-mnist``, where
    Debian's package ``dataset-fashion-mnist`` puts them).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``; images (n, 28, 28), float32
        in [0, 1] when ``normalize`` else uint8; labels int64 in 0..9 (names
        in ``FASHION_MNIST_CLASSES``).

    Raises:
        FileNotFoundError: when the files are missing, saying how to install them.
        ValueError: when a file is not a valid IDX file.
    """
    directory = _fashion_mnist_dir(path)
    if not fashion_mnist_available(directory):
        raise FileNotFoundError(
            f"Fashion-MNIST was not found in {directory}. Install it with "
            "'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu), or point "
            f"{FASHION_MNIST_ENV} (or path=) at a folder holding "
            + ", ".join(FASHION_MNIST_FILES.values())
            + ". tfqnn never downloads data."
        )
    arrays = {
        key: read_idx(os.path.join(directory, name)) for key, name in FASHION_MNIST_FILES.items()
    }
    for split in ("train", "test"):
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            raise ValueError(f"Fashion-MNIST {split} images and labels differ in length.")
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if normalize:
        x_train = x_train.astype(np.float32) / 255.0
        x_test = x_test.astype(np.float32) / 255.0
    return (
        (x_train, arrays["y_train"].astype(np.int64)),
        (x_test, arrays["y_test"].astype(np.int64)),
    )


def read_idx(filename: str) -> np.ndarray:
    """Reads an (optionally gzipped) IDX file of unsigned bytes into a numpy array.

    The format: two zero bytes, a type byte (0x08 for uint8), the number of
    dimensions, then one big-endian uint32 per dimension and the data.
    """
    opener = gzip.open if filename.endswith(".gz") else open
    try:
        with opener(filename, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"Cannot read IDX file {filename}: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{filename} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{filename}: truncated IDX header.")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    if len(data) - header != int(np.prod(shape)):
        raise ValueError(
            f"{filename}: IDX header says shape {shape} but holds {len(data) - header} bytes."
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _fashion_mnist_dir(path: PathLike | None) -> PathLike:
    return path or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR
