"""save_compressed / load_compressed: exact predictions, sizes, and a fuzzer."""

import copy
import json
import struct
import zlib

import keras
import numpy as np
import pytest

from tfqnn import codebook
from tfqnn.codebook import compressed


@pytest.fixture(scope="module")
def mlp():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(64, activation="relu", name="fc1"),
            keras.layers.Dense(48, activation="relu", name="fc2"),
            keras.layers.Dense(10, name="out"),
        ]
    )


def _header(data):
    """The header of a format 2 file (zlib JSON) and where its payload starts."""
    assert data[:8] == compressed.MAGIC
    (length,) = struct.unpack_from("<Q", data, 8)
    return json.loads(zlib.decompress(data[16 : 16 + length])), 16 + length


def _pack(header, payload):
    """A format 2 file of ``header`` (any JSON) and ``payload``."""
    text = zlib.compress(json.dumps(header).encode())
    return compressed.MAGIC + struct.pack("<Q", len(text)) + text + payload


def _pack_v1(header, payload):
    """A format 1 file: the same header uncompressed, behind the old magic."""
    text = json.dumps({**header, "format": 1}).encode()
    return compressed.MAGIC_V1 + struct.pack("<Q", len(text)) + text + payload


@pytest.mark.parametrize(
    "make",
    [
        lambda m: codebook.cluster(m, 16),
        lambda m: codebook.cluster(codebook.prune(m, 0.9), 16),
        lambda m: codebook.cluster(m, 8, method="product", subvector_size=2, layers=["fc1"]),
        lambda m: codebook.cluster(m, 4, method="residual", stages=2),
        lambda m: codebook.prune(m, 0.5),
        lambda m: m,
    ],
)
def test_round_trip_and_size(mlp, make, tmp_path, rng):
    model = make(mlp)
    path = tmp_path / "model.tfqnncb"
    size = codebook.save_compressed(model, path)
    assert size == path.stat().st_size
    loaded = codebook.load_compressed(path)
    x = rng.normal(size=(16, 32)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # The file is the report's Huffman prediction (whole bytes per stream),
    # the header and the raw tensors.
    data = path.read_bytes()
    header, start = _header(data)
    raw = sum(e["length"] for e in header["tensors"] if e["encoding"] == "raw")
    coded = size - start - raw
    report = codebook.report(model, print_fn=None)
    predicted = sum(k.huffman_bits for k in report.kernels) / 8
    assert predicted <= coded <= 1.02 * predicted + 2 * len(report.kernels) * 2
    assert raw == 4 * sum(int(np.prod(v.shape)) for v in codebook.strip(model).weights) - sum(
        4 * k.weights for k in report.kernels
    )


def test_report_numbers_follow_the_formulas(mlp):
    model = codebook.cluster(codebook.prune(mlp, 0.8), 8, layers=["fc1"])
    result = codebook.report(model, print_fn=None)
    (k,) = result.kernels
    _, indices = model.get_layer("fc1").codebook("kernel")
    counts = np.bincount(indices[0], minlength=9)
    p = counts[counts > 0] / counts.sum()
    assert k.entropy == pytest.approx(-(p * np.log2(p)).sum())
    assert k.weights == 32 * 64 and k.nonzeros == int(round(0.2 * 32 * 64))
    assert k.index_bits == 4  # 8 clusters plus the zero code
    assert k.fixed_bits == 32 * 64 * 4 + 8 * 32
    assert k.fixed_ratio == pytest.approx(32 * 32 * 64 / (32 * 64 * 4 + 8 * 32))
    assert k.huffman_bits <= 32 * 64 * k.entropy + 32 * 64 + 8 * 32
    # Every other parameter of the plain model (masks are not stored) at 32 bits.
    others = codebook.strip(model).count_params() - 32 * 64
    assert result.other_bits == 32 * others
    assert result.huffman_ratio == pytest.approx(
        (32 * 32 * 64 + result.other_bits) / (k.huffman_bits + result.other_bits)
    )
    assert set(result.to_dict()) >= {"kernels", "fixed_ratio", "huffman_ratio"}
    lines = []
    codebook.report(model, print_fn=lines.append)
    assert "fc1/kernel" in lines[0]


@pytest.fixture(scope="module")
def small_file():
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(12, name="a"), keras.layers.Dense(4, name="b")]
    )
    pruned = codebook.cluster(codebook.prune(model, 0.7, layers=["a"]), 4, layers=["a"])
    dense = codebook.cluster(pruned, 4, method="product", subvector_size=2, layers=["b"])
    return compressed.to_bytes(dense)


def _parse_or_value_error(data):
    try:
        compressed.parse(bytes(data))
    except ValueError:
        return False
    return True


def test_fuzz_truncated_and_bit_flipped(small_file, rng):
    data = bytearray(small_file)
    assert _parse_or_value_error(data)
    cases = 0
    for end in range(0, len(data), max(1, len(data) // 3000)):
        assert not _parse_or_value_error(data[:end])
        cases += 1
    _, start = _header(small_file)
    for _ in range(max(6000, 8000 - cases)):  # the deflated header made the file small
        flipped = bytearray(data)
        # Half the flips land in the payload, where they decode to other indices or fail.
        position = (
            int(rng.integers(start, len(data)))
            if rng.random() < 0.5
            else int(rng.integers(0, len(data)))
        )
        flipped[position] ^= 1 << int(rng.integers(8))
        _parse_or_value_error(flipped)
        cases += 1
    assert cases >= 8000


CRAFTED = [0, -1, 1, 7, 2**31, 2**62, 10**30, -(2**63), 1.5, True, None, "x", [], {}, [2**40]]


def test_fuzz_hand_crafted_headers(small_file, rng):
    header, start = _header(small_file)
    payload = small_file[start:]

    def paths(node, prefix=()):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from paths(value, (*prefix, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from paths(value, (*prefix, i))
        yield prefix

    targets = [p for p in paths(header["tensors"]) if p]
    cases = 0
    for _ in range(2500):
        mutated = copy.deepcopy(header)
        node = mutated["tensors"]
        path = targets[int(rng.integers(len(targets)))]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = CRAFTED[int(rng.integers(len(CRAFTED)))]
        pack = _pack if cases % 2 else _pack_v1  # both formats' readers
        _parse_or_value_error(pack(mutated, payload))
        cases += 1
    for length in (0, 2**63, len(small_file)):
        bad = compressed.MAGIC + struct.pack("<Q", length) + small_file[16:]
        assert not _parse_or_value_error(bad)
    assert cases == 2500


def test_crafted_model_configs_raise_value_error(small_file):
    header, start = _header(small_file)
    payload = small_file[start:]
    for change in (
        lambda h: h["model"].update(class_name="NoSuchLayer"),
        lambda h: h["model"]["config"]["layers"][1]["config"].update(units=10**9),
        lambda h: h["model"]["config"]["layers"][1]["config"].update(units=13),
        lambda h: h["tensors"].pop(),
        lambda h: h.update(model=[]),
    ):
        mutated = copy.deepcopy(header)
        change(mutated)
        for pack in (_pack, _pack_v1):
            with pytest.raises(ValueError, match="Invalid compressed file"):
                compressed.from_bytes(pack(mutated, payload))
    assert compressed.from_bytes(small_file).count_params() == 8 * 12 + 12 + 12 * 4 + 4


def test_compiled_models_round_trip(mlp, tmp_path, rng):
    clustered = codebook.cluster(mlp, 8)
    clustered.compile("adam", "sparse_categorical_crossentropy")
    x = rng.normal(size=(8, 32)).astype("float32")
    clustered.fit(x, np.arange(8) % 10, epochs=1, verbose=0)
    path = tmp_path / "compiled.tfqnncb"
    codebook.save_compressed(clustered, path)
    header, _ = _header(path.read_bytes())
    assert "compile_config" not in header["model"]
    loaded = codebook.load_compressed(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), clustered.predict(x, verbose=0))


def test_format_one_files_still_load_and_the_header_is_deflated(mlp, rng):
    model = codebook.cluster(codebook.prune(mlp, 0.5), 8)
    data = compressed.to_bytes(model)
    header, start = _header(data)
    assert header["format"] == 2
    plain = json.dumps(header, separators=(",", ":")).encode()
    assert start - 16 < len(plain) / 3  # the Keras config deflates well
    old = _pack_v1(header, data[start:])
    x = rng.normal(size=(8, 32)).astype("float32")
    expected = model.predict(x, verbose=0)
    for blob in (data, old):
        np.testing.assert_array_equal(compressed.from_bytes(blob).predict(x, verbose=0), expected)
    # Version and magic must agree.
    for blob in (
        _pack({**header, "format": 1}, data[start:]),
        _pack_v1(header, data[start:]).replace(b'"format": 1', b'"format": 2'),
    ):
        with pytest.raises(ValueError, match="expected format"):
            compressed.from_bytes(blob)


def test_header_inflation_is_bounded(small_file, monkeypatch):
    header, start = _header(small_file)
    payload = small_file[start:]
    monkeypatch.setattr(compressed, "MAX_HEADER", 1000)
    with pytest.raises(ValueError, match="inflates past 1000 bytes"):
        compressed.from_bytes(_pack(header, payload))
    monkeypatch.undo()
    text = zlib.compress(json.dumps(header).encode())
    for bad in (text[:-3], text + b"extra", b"not deflate at all"):
        data = compressed.MAGIC + struct.pack("<Q", len(bad)) + bad + payload
        with pytest.raises(ValueError, match="Invalid compressed file: .*header"):
            compressed.from_bytes(data)
