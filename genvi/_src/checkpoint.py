"""Checkpoints of a training state pytree, written with orbax-checkpoint.

A checkpoint folder holds one sub-folder per saved step, ``ckpt_<step>``
(eight digits at least), managed by an ``orbax.checkpoint.CheckpointManager``:
a step is written under a temporary name and committed atomically, the newest
``keep`` steps are kept, leftover temporary folders of an interrupted save are
removed when the folder is next opened, and a save may run in the background
(:class:`CheckpointWriter`).

Each step holds two items:

- ``state``: the array leaves of the state (typed PRNG keys as their key data;
  zero-size leaves are not written, only described), restored with the sharding
  of the target;
- ``meta``: the step number and, for every leaf in ``jax.tree_util`` order, its
  key path, shape and dtype. A restore compares them with the target and names
  the first leaf that differs, so a state saved as ``{encoder, decoder}`` never
  restores into ``{generator, critic}``.

The metric history is not part of a checkpoint: it lives in an append-only log
beside the steps (see :mod:`genvi._src.runs`), so a checkpoint's size does not
grow with the length of the run. A newest step that cannot be read (a corrupt
or truncated file) is skipped with a :class:`CheckpointWarning` naming it and
the step restored instead.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .runs import append_history, read_history

FORMAT_VERSION = 2
_PREFIX = "ckpt"
_DIGITS = 8
_NAME = re.compile(r"^ckpt_(\d{8,})$")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped, replaced or restored with a caveat."""


def _ocp():
    # orbax is imported on first use: importing genvi stays fast.
    import orbax.checkpoint as ocp

    return ocp


def checkpoint_path(checkpoint_dir: str | os.PathLike, step: int) -> Path:
    """The folder of the checkpoint of ``step`` in ``checkpoint_dir``."""
    return Path(checkpoint_dir) / f"{_PREFIX}_{int(step):0{_DIGITS}d}"


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(
        leaf.dtype, jax.dtypes.prng_key
    )


def _describe(state):
    """(paths, leaves as plain arrays, meta entries) of a state pytree."""
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    paths, arrays, entries = [], [], []
    for path, leaf in flat:
        key = _is_key(leaf)
        if key:
            leaf = jax.random.key_data(leaf)
        elif not isinstance(leaf, jax.Array):
            leaf = np.asarray(leaf)
        paths.append(jax.tree_util.keystr(path))
        arrays.append(leaf)
        entries.append(
            {
                "path": paths[-1],
                "shape": list(np.shape(leaf)),
                "dtype": str(jnp.dtype(leaf.dtype)),
                "key": key,
            }
        )
    return paths, arrays, entries


def _manager(folder: Path, keep: int | None, *, asynchronous: bool, read_only=False):
    ocp = _ocp()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        step_prefix=_PREFIX,
        step_format_fixed_length=_DIGITS,
        cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=asynchronous,
        create=not read_only,
        read_only=read_only,
    )
    return ocp.CheckpointManager(folder.absolute(), options=options)


class CheckpointWriter:
    """Writes the steps of one run into one folder (optionally in the background).

    Args:
      checkpoint_dir: the folder (created if missing).
      keep: newest steps kept (``None``: all).
      asynchronous: if True, :meth:`save` returns once the arrays are copied
        to host memory and writes them in a background thread; :meth:`wait`
        (and :meth:`close`) block until every save is committed.
    """

    def __init__(self, checkpoint_dir, keep: int | None = 3, *, asynchronous=False):
        if keep is not None and (not isinstance(keep, int | np.integer) or keep < 1):
            raise ValueError(
                f"save_checkpoint: `keep` must be None or an int >= 1, got {keep!r}"
            )
        self.folder = Path(checkpoint_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._manager = _manager(self.folder, keep, asynchronous=asynchronous)

    def save(self, state, step: int, history: dict | None = None) -> Path:
        """Saves ``state`` as step ``step``; appends ``history`` to the log first."""
        if not isinstance(step, int | np.integer) or step < 0:
            raise ValueError(
                f"save_checkpoint: `step` must be an int >= 0, got {step!r}"
            )
        ocp = _ocp()
        if history:
            append_history(self.folder, history, step)
        _, arrays, entries = _describe(state)
        items = {
            f"{i:06d}": a for i, (a, e) in enumerate(zip(arrays, entries)) if a.size
        }
        meta = {"format_version": FORMAT_VERSION, "step": int(step), "leaves": entries}
        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(items), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        return checkpoint_path(self.folder, step)

    def wait(self):
        """Blocks until every started save is committed."""
        self._manager.wait_until_finished()

    def close(self):
        """Waits for the saves and releases the manager's threads."""
        self._manager.close()


def save_checkpoint(
    checkpoint_dir: str | os.PathLike,
    state,
    step: int,
    history: dict | None = None,
    *,
    keep: int | None = 3,
) -> Path:
    """Saves ``state`` (any pytree of arrays) as step ``step``, atomically.

    Args:
      checkpoint_dir: folder of the checkpoints (created if missing).
      state: the pytree to save; its leaves must be arrays or numbers.
      step: the number of training steps done; names the folder
        ``ckpt_<step>``.
      history: a dict of per-step arrays (the metrics so far, with a ``"step"``
        entry numbering the rows; without one the rows are taken to end at
        ``step``) or ``None``. Rows newer than the log's last row are
        appended to the folder's metrics log; the checkpoint itself holds no
        history.
      keep: how many of the newest checkpoints to keep in the folder (older
        ones are deleted after the new one is committed); ``None`` keeps all.

    Returns:
      The path of the written checkpoint folder.

    Raises:
      ValueError: if ``step`` is negative or ``keep`` is not ``None`` or >= 1.
    """
    if not isinstance(step, int | np.integer) or step < 0:
        raise ValueError(f"save_checkpoint: `step` must be an int >= 0, got {step!r}")
    writer = CheckpointWriter(checkpoint_dir, keep)
    try:
        return writer.save(state, step, history)
    finally:
        writer.close()


def list_checkpoints(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """The committed checkpoint folders in ``checkpoint_dir``, oldest step first."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if (m := _NAME.match(p.name)) and p.is_dir()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest step in ``checkpoint_dir``, or ``None``."""
    found = list_checkpoints(checkpoint_dir)
    return found[-1] if found else None


def _spec(like_leaf):
    """(key path, shape, dtype) that a saved leaf must have to fill ``like_leaf``."""
    if _is_key(like_leaf):
        data = jax.random.key_data(like_leaf)
        return data.shape, str(data.dtype), True
    arr = like_leaf if isinstance(like_leaf, jax.Array) else np.asarray(like_leaf)
    return tuple(arr.shape), str(jnp.dtype(arr.dtype)), False


def _check_structure(path: Path, entries, like):
    flat, _ = jax.tree_util.tree_flatten_with_path(like)
    where = f"restore_checkpoint: the state saved in {str(path)!r}"
    for i in range(max(len(entries), len(flat))):
        saved = entries[i] if i < len(entries) else None
        if i >= len(flat):
            raise ValueError(
                f"{where} has more leaves ({len(entries)}) than `like` "
                f"({len(flat)}); the first extra one is {saved['path']}"
            )
        name = jax.tree_util.keystr(flat[i][0])
        if saved is None:
            raise ValueError(
                f"{where} has fewer leaves ({len(entries)}) than `like` "
                f"({len(flat)}); the first missing one is {name}"
            )
        if saved["path"] != name:
            raise ValueError(
                f"{where} differs from `like` at leaf {i}: saved {saved['path']}, "
                f"`like` has {name}"
            )
        shape, dtype, _ = _spec(flat[i][1])
        if tuple(saved["shape"]) != tuple(shape) or saved["dtype"] != dtype:
            raise ValueError(
                f"{where}: leaf {name} has shape {tuple(saved['shape'])} and dtype "
                f"{saved['dtype']}, but `like` expects {tuple(shape)} and {dtype}"
            )


def _target_sharding(leaf):
    if isinstance(leaf, jax.Array):
        ref = jax.random.key_data(leaf) if _is_key(leaf) else leaf
        return ref.sharding
    return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _read_step(folder: Path, step: int, like):
    """Restores one step; ValueError for a structure mismatch, other errors raw."""
    ocp = _ocp()
    manager = _manager(folder, None, asynchronous=False, read_only=True)
    path = checkpoint_path(folder, step)
    try:
        meta = manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
        ).meta
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise _Unreadable(f"{str(path)!r} is not a genvi checkpoint")
        _check_structure(path, meta["leaves"], like)
        like_leaves, treedef = jax.tree_util.tree_flatten(like)
        abstract = {}
        for i, (entry, ref) in enumerate(zip(meta["leaves"], like_leaves)):
            if np.prod(entry["shape"], dtype=np.int64):
                abstract[f"{i:06d}"] = jax.ShapeDtypeStruct(
                    tuple(entry["shape"]),
                    jnp.dtype(entry["dtype"]),
                    sharding=_target_sharding(ref),
                )
        stored = {}
        if abstract:
            stored = manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)),
            ).state
    finally:
        manager.close()
    leaves = []
    for i, (entry, ref) in enumerate(zip(meta["leaves"], like_leaves)):
        value = stored.get(f"{i:06d}")
        if value is None:
            value = jnp.zeros(tuple(entry["shape"]), jnp.dtype(entry["dtype"]))
        if entry["key"]:
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(ref))
        elif not isinstance(ref, jax.Array):
            value = np.asarray(value)
        leaves.append(value)
    return jax.tree_util.tree_unflatten(treedef, leaves), int(meta["step"])


class _Unreadable(Exception):
    pass


def restore_checkpoint(path: str | os.PathLike, like, *, fallback: bool = True):
    """Loads a checkpoint written by :func:`save_checkpoint` or :func:`genvi.train`.

    Args:
      path: a checkpoint folder ``ckpt_<step>``, or the folder of a run (its
        newest readable checkpoint is loaded).
      like: a pytree with the structure, key paths, shapes and dtypes of the
        saved state (e.g. the freshly initialised state); its leaves are
        replaced. Arrays are restored with the sharding of its leaves.
      fallback: given the folder of a run, skip a newest checkpoint that cannot
        be read (corrupt or truncated) with a :class:`CheckpointWarning`
        naming it and the one restored instead (default True).

    Returns:
      ``(state, step, history)``: the state with the structure of ``like``, the
      step number (int) and the metric history up to that step from the
      folder's log (a dict of numpy arrays, empty without a log).

    Raises:
      FileNotFoundError: if there is no such checkpoint, or the folder holds
        none.
      ValueError: if the checkpoint cannot be read (and no older one can), or
        its leaves differ from ``like`` in key path, number, shape or dtype;
        the message names the path and the first leaf that differs.
    """
    path = Path(path)
    if (m := _NAME.match(path.name)) and path.is_dir():
        candidates, folder = [int(m.group(1))], path.parent
    elif path.is_dir():
        folder = path
        candidates = [int(_NAME.match(p.name).group(1)) for p in list_checkpoints(path)]
        candidates = candidates[::-1] if fallback else candidates[-1:]
        if not candidates:
            raise FileNotFoundError(
                f"restore_checkpoint: no ckpt_<step> checkpoint in folder {str(path)!r}"
            )
    else:
        raise FileNotFoundError(f"restore_checkpoint: no such checkpoint {str(path)!r}")
    failed = []
    for step in candidates:
        try:
            state, step = _read_step(folder, step, like)
        except ValueError as e:
            if str(e).startswith("restore_checkpoint:"):
                raise
            failed.append((checkpoint_path(folder, step), e))
            continue
        except Exception as e:  # a corrupt, truncated or foreign checkpoint
            failed.append((checkpoint_path(folder, step), e))
            continue
        if failed:
            good = str(checkpoint_path(folder, step))
            warnings.warn(
                f"restore_checkpoint: skipped unreadable checkpoint(s) "
                f"{[str(p) for p, _ in failed]} ({type(failed[0][1]).__name__}: "
                f"{_short(failed[0][1])}); restored {good!r}",
                CheckpointWarning,
                stacklevel=2,
            )
        return state, step, read_history(folder, upto=step)
    bad, error = failed[0]
    raise ValueError(
        f"restore_checkpoint: {str(bad)!r} is not a readable checkpoint (corrupt, "
        f"truncated or not written by genvi): {type(error).__name__}: {_short(error)}"
    ) from error


def _short(error, limit=200):
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
