"""Digits split and the IDX reader, on small IDX files written here."""

import gzip
import struct

import numpy as np
import pytest

import genvi

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C}
_CODES.update({np.float32: 0x0D, np.float64: 0x0E})


def _idx_bytes(array):
    array = np.asarray(array)
    header = struct.pack(">BBBB", 0, 0, _CODES[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path, array, compress=False):
    data = _idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("dtype", list(_CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 2)) * 50).astype(dtype)
    # The name does not decide compression; the gzip magic bytes do.
    out = genvi.read_idx(_write(tmp_path / "f.idx", array, compress))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"read_idx: no such file .*nope"):
        genvi.read_idx(tmp_path / "nope")
    good = _idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    bad_gzip = tmp_path / "bad.gz"
    bad_gzip.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(ValueError, match=r"read_idx: .*bad.gz' is a corrupt gzip"):
        genvi.read_idx(bad_gzip)
    magic = tmp_path / "magic"
    magic.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match=r"read_idx: .*magic' has a wrong magic"):
        genvi.read_idx(magic)
    short = tmp_path / "short"
    short.write_bytes(good[:-1])
    with pytest.raises(
        ValueError, match=r"short' has 17 bytes but its header .* needs 18"
    ):
        genvi.read_idx(short)
    header = tmp_path / "header"
    header.write_bytes(good[:6])
    with pytest.raises(ValueError, match=r"header' is truncated inside its header"):
        genvi.read_idx(header)


def _mnist_folder(folder, n_train=5, n_test=3, compress=True):
    rng = np.random.default_rng(1)
    folder.mkdir(exist_ok=True)
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 4, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if compress else ""
        _write(folder / f"{part}-images-idx3-ubyte{suffix}", images, compress)
        _write(folder / f"{part}-labels-idx1-ubyte{suffix}", labels, compress)
        arrays[part] = (images, labels)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist(tmp_path, compress):
    arrays = _mnist_folder(tmp_path / "m", compress=compress)
    data = genvi.load_mnist(tmp_path / "m")
    images, labels = arrays["train"]
    assert data.train.x.shape == (5, 12) and data.train.x.dtype == np.float32
    np.testing.assert_allclose(data.train.x, images.reshape(5, 12) / 255.0)
    np.testing.assert_array_equal(data.train.y, labels)
    assert data.test.y.dtype == np.int32 and len(data.test.y) == 3
    square = genvi.load_mnist(tmp_path / "m", flatten=False)
    assert square.test.x.shape == (3, 4, 3)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_mnist: no such folder"):
        genvi.load_mnist(tmp_path / "missing")
    _mnist_folder(tmp_path / "m")
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"neither .*t10k-labels-idx1-ubyte'"):
        genvi.load_mnist(tmp_path / "m")
    _write(tmp_path / "m" / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(
        ValueError, match=r"holds labels of shape \(4,\) but .*3 images"
    ):
        genvi.load_mnist(tmp_path / "m")
    _write(tmp_path / "m" / "train-images-idx3-ubyte.gz", np.zeros((5, 2)), True)
    with pytest.raises(ValueError, match=r"must hold uint8 images of shape"):
        genvi.load_mnist(tmp_path / "m")


def test_digits_split_is_fixed_stratified_and_disjoint():
    data = genvi.load_digits()
    assert [len(s.y) for s in data] == [1079, 359, 359]
    for split in data:
        assert split.x.shape == (len(split.y), 64) and split.x.dtype == np.float32
        assert split.x.min() == 0.0 and split.x.max() == 1.0
    # Stratified: every class within one example of its share.
    total = np.bincount(np.concatenate([s.y for s in data]))
    for split, f in zip(data, (0.6, 0.2, 0.2)):
        assert np.all(np.abs(np.bincount(split.y) - f * total) <= 1)
    # Disjoint and complete: the index sets partition the 1797 examples.
    labels = np.arange(1797) % 10
    parts = genvi.stratified_split(labels, (0.6, 0.2, 0.2), seed=0)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(1797))
    again = genvi.load_digits()
    np.testing.assert_array_equal(again.test.x, data.test.x)
    other = genvi.load_digits(seed=1)
    assert not np.array_equal(other.test.x, data.test.x)
    a, b = genvi.digits_halves()
    assert (len(a.y), len(b.y)) == (899, 898)


def test_split_errors():
    with pytest.raises(ValueError, match=r"load_digits: `fractions` must have 3"):
        genvi.load_digits((0.5, 0.5))
    with pytest.raises(ValueError, match=r"stratified_split: `fractions` must be"):
        genvi.stratified_split(np.zeros(4), (0.7, 0.7))
