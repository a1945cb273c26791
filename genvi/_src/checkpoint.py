"""Checkpoints of a training state pytree: one ``.npz`` file per saved step.

A checkpoint holds the leaves of the state (in ``jax.tree_util`` order), the step
number and the metrics history so far. The tree structure itself is not stored:
restoring needs a state of the same structure (``like``), e.g. the freshly
initialised state of the run being resumed, so that no pickling is involved and
the file format is plain numpy. Typed PRNG keys (``jax.random.key``) are stored
as their key data and re-wrapped with the implementation of ``like``.

Files are written to a temporary name in the same folder and then renamed, so a
crash while saving never leaves a truncated checkpoint under the final name.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

_FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt_(\d{8,})\.npz$")


def checkpoint_path(checkpoint_dir: str | os.PathLike, step: int) -> Path:
    """The file name of the checkpoint of ``step`` in ``checkpoint_dir``."""
    return Path(checkpoint_dir) / f"ckpt_{int(step):08d}.npz"


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(
        leaf.dtype, jax.dtypes.prng_key
    )


def save_checkpoint(
    checkpoint_dir: str | os.PathLike,
    state,
    step: int,
    history: dict | None = None,
    *,
    keep: int | None = 3,
) -> Path:
    """Saves ``state`` (any pytree of arrays), ``step`` and ``history`` atomically.

    Args:
      checkpoint_dir: folder of the checkpoints (created if missing).
      state: the pytree to save; its leaves must be arrays or numbers.
      step: the number of training steps done; names the file ``ckpt_<step>.npz``.
      history: a dict of numpy arrays (the metrics so far) or ``None``.
      keep: how many of the newest checkpoints to keep in the folder (older
        ones are deleted after the new one is written); ``None`` keeps all.

    Returns:
      The path of the written file.

    Raises:
      ValueError: if ``step`` is negative or ``keep`` is not ``None`` or >= 1.
    """
    if int(step) < 0:
        raise ValueError(f"save_checkpoint: `step` must be >= 0, got {step!r}")
    if keep is not None and int(keep) < 1:
        raise ValueError(f"save_checkpoint: `keep` must be None or >= 1, got {keep!r}")
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    leaves = jax.tree_util.tree_leaves(state)
    arrays = {
        "format_version": np.asarray(_FORMAT_VERSION),
        "step": np.asarray(int(step), dtype=np.int64),
        "num_leaves": np.asarray(len(leaves), dtype=np.int64),
    }
    for i, leaf in enumerate(leaves):
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        arrays[f"leaf_{i:06d}"] = np.asarray(jax.device_get(leaf))
    for name, value in (history or {}).items():
        arrays[f"history/{name}"] = np.asarray(value)
    final = checkpoint_path(folder, step)
    # A temporary file in the same folder, so that os.replace is an atomic rename.
    fd, tmp = tempfile.mkstemp(prefix=".tmp_ckpt_", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if keep is not None:
        for old in list_checkpoints(folder)[: -int(keep)]:
            if old != final:
                old.unlink(missing_ok=True)
    return final


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """The checkpoint files in ``checkpoint_dir``, oldest step first."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``checkpoint_dir``, or ``None``."""
    found = list_checkpoints(checkpoint_dir)
    return found[-1] if found else None


def restore_checkpoint(path: str | os.PathLike, like):
    """Loads a checkpoint written by :func:`save_checkpoint`.

    Args:
      path: a checkpoint file, or a folder (its latest checkpoint is loaded).
      like: a pytree with the structure, shapes and dtypes of the saved state
        (e.g. the freshly initialised state); its leaves are replaced.

    Returns:
      ``(state, step, history)``: the state with the structure of ``like``, the
      step number (int) and the history (dict of numpy arrays, maybe empty).

    Raises:
      FileNotFoundError: if there is no such file, or the folder holds no
        checkpoint.
      ValueError: if the file is not a readable checkpoint, or its leaves do not
        match ``like`` in number, shape or dtype; the message names the path.
    """
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(
                f"restore_checkpoint: no ckpt_<step>.npz file in folder {str(path)!r}"
            )
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"restore_checkpoint: no such file {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"restore_checkpoint: {str(path)!r} is not a readable checkpoint "
            f"(corrupt or truncated file): {e}"
        ) from e
    for field in ("format_version", "step", "num_leaves"):
        if field not in arrays:
            raise ValueError(
                f"restore_checkpoint: {str(path)!r} is not a genvi checkpoint "
                f"(no `{field}` entry)"
            )
    like_leaves, treedef = jax.tree_util.tree_flatten(like)
    num = int(arrays["num_leaves"])
    if num != len(like_leaves):
        raise ValueError(
            f"restore_checkpoint: {str(path)!r} holds {num} leaves but `like` has "
            f"{len(like_leaves)}; the state structure changed since it was saved"
        )
    leaves = []
    for i, ref in enumerate(like_leaves):
        value = arrays[f"leaf_{i:06d}"]
        if _is_key(ref):
            data = jax.random.key_data(ref)
            _check_leaf(path, i, value, data.shape, data.dtype)
            leaves.append(
                jax.random.wrap_key_data(value, impl=jax.random.key_impl(ref))
            )
            continue
        ref_arr = np.asarray(ref) if not isinstance(ref, jax.Array) else ref
        _check_leaf(path, i, value, ref_arr.shape, ref_arr.dtype)
        leaves.append(jnp.asarray(value) if isinstance(ref, jax.Array) else value)
    history = {
        k[len("history/") :]: v for k, v in arrays.items() if k.startswith("history/")
    }
    return jax.tree_util.tree_unflatten(treedef, leaves), int(arrays["step"]), history


def _check_leaf(path, i, value, shape, dtype):
    if tuple(value.shape) != tuple(shape) or np.dtype(value.dtype) != np.dtype(dtype):
        raise ValueError(
            f"restore_checkpoint: leaf {i} of {str(path)!r} has shape "
            f"{tuple(value.shape)} and dtype {value.dtype}, but `like` expects "
            f"{tuple(shape)} and {np.dtype(dtype)}"
        )
