"""What a checkpoint folder holds besides its steps: history, identity, lock.

- ``metrics.log``: the metric history, append-only. Each record is one JSON
  header line (rows, first and last step, name, dtype, per-row shape and byte
  count of every array, CRC-32 of the payload) followed by the raw bytes. A
  record cut short by a crash fails its length or CRC check and ends the log
  there; a record whose first step is not after the previous rows replaces them
  from that step on (a run resumed from an older checkpoint rewrites the steps
  the crashed run had logged beyond it). Saving a checkpoint appends only the
  rows since the last save, so its cost does not depend on the run's length.
- ``run.json``: the identity of the run that writes the folder, a hash of its
  configuration (key paths, shapes and dtypes of the state and the data, the
  step function's name, the NaN policy) and that configuration in words.
- ``.lock``: the process id and host of the process writing the folder, so a
  second writer fails instead of mixing its checkpoints with the first's; a
  lock whose process is gone is taken over with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import warnings
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

LOG_NAME = "metrics.log"
RUN_NAME = "run.json"
LOCK_NAME = ".lock"


# ----------------------------------------------------------------------------
# The metrics log.


def _rows(history: dict, step: int):
    history = {k: np.asarray(v) for k, v in history.items()}
    lengths = {len(v) for v in history.values() if v.ndim}
    if len(lengths) != 1 or any(v.ndim == 0 for v in history.values()):
        raise ValueError(
            "save_checkpoint: every entry of `history` must hold one row per step, "
            f"got shapes { {k: v.shape for k, v in history.items()} }"
        )
    (n,) = lengths
    steps = history.get("step")
    if steps is None:
        steps = np.arange(int(step) - n + 1, int(step) + 1)
    return history, np.asarray(steps, np.int64)


def _last_logged_step(folder: Path) -> int:
    entries = _read_records(folder / LOG_NAME)
    return max((int(h["last_step"]) for h, _ in entries), default=-1)


def append_history(folder, history: dict, step: int) -> None:
    """Appends the rows of ``history`` with steps in (last logged, ``step``]."""
    folder = Path(folder)
    history, steps = _rows(history, step)
    last = _last_logged_step(folder)
    keep = (steps > last) & (steps <= int(step))
    if not keep.any():
        return
    write_rows(folder, {k: v[keep] for k, v in history.items()}, steps[keep])


def write_rows(folder, rows: dict, steps) -> None:
    """Appends one record (``rows``: name -> array with one row per step)."""
    steps = np.asarray(steps, np.int64)
    if not len(steps):
        return
    arrays, payload = [], []
    for name, value in rows.items():
        value = np.ascontiguousarray(value)
        data = value.tobytes()
        arrays.append([name, str(value.dtype), list(value.shape[1:]), len(data)])
        payload.append(data)
    arrays.append(["__step__", "int64", [], steps.nbytes])
    payload.append(steps.tobytes())
    body = b"".join(payload)
    header = {
        "rows": int(len(steps)),
        "first_step": int(steps[0]),
        "last_step": int(steps[-1]),
        "arrays": arrays,
        "crc32": zlib.crc32(body),
    }
    with open(Path(folder) / LOG_NAME, "ab") as f:
        f.write(json.dumps(header).encode() + b"\n" + body)
        f.flush()
        os.fsync(f.fileno())


def _read_records(path: Path):
    if not path.is_file():
        return []
    raw = path.read_bytes()
    records, at = [], 0
    while at < len(raw):
        end = raw.find(b"\n", at)
        if end < 0:
            break
        try:
            header = json.loads(raw[at:end])
            size = sum(int(a[3]) for a in header["arrays"])
        except (ValueError, KeyError, TypeError, IndexError):
            break
        body = raw[end + 1 : end + 1 + size]
        if len(body) != size or zlib.crc32(body) != header.get("crc32"):
            break  # a record cut short by a crash: the log ends before it
        records.append((header, body))
        at = end + 1 + size
    return records


def read_history(folder, upto: int | None = None) -> dict:
    """The logged history (rows with step <= ``upto``), name -> numpy array."""
    columns: dict[str, list] = {}
    for header, body in _read_records(Path(folder) / LOG_NAME):
        values, offset = {}, 0
        for name, dtype, shape, nbytes in header["arrays"]:
            chunk = np.frombuffer(
                body[offset : offset + nbytes], dtype=jnp.dtype(dtype)
            )
            values[name] = chunk.reshape((header["rows"], *shape))
            offset += nbytes
        steps = values.pop("__step__")
        if "__step__" in columns:  # drop the rows this record rewrites
            old = np.concatenate(columns["__step__"])
            keep = old < steps[0]
            columns = {k: [np.concatenate(v)[keep]] for k, v in columns.items()}
        for name, value in values.items():
            columns.setdefault(name, []).append(value)
        columns.setdefault("__step__", []).append(steps)
    if not columns:
        return {}
    steps = np.concatenate(columns.pop("__step__"))
    keep = steps <= upto if upto is not None else np.ones(len(steps), bool)
    return {k: np.concatenate(v)[keep].copy() for k, v in columns.items()}


# ----------------------------------------------------------------------------
# Run identity.


def describe_run(state, data, step_fn, nan_policy: str) -> dict:
    """The configuration that identifies a run, JSON-serialisable."""

    def leaves(tree):
        flat, _ = jax.tree_util.tree_flatten_with_path(tree)
        return [
            f"{jax.tree_util.keystr(p)}: {jnp.result_type(x)}{list(np.shape(x))}"
            for p, x in flat
        ]

    name = getattr(step_fn, "__qualname__", None) or type(step_fn).__qualname__
    module = getattr(step_fn, "__module__", None) or type(step_fn).__module__
    return {
        "step_fn": f"{module}.{name}",
        "nan_policy": nan_policy,
        "state": leaves(state),
        "data": leaves(data) if data is not None else None,
    }


def run_hash(description: dict) -> str:
    text = json.dumps(description, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_run(folder) -> dict | None:
    path = Path(folder) / RUN_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def write_run(folder, description: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"config_hash": run_hash(description), "config": description}
    tmp = folder / f".tmp_{RUN_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, folder / RUN_NAME)


def first_difference(saved: dict, current: dict) -> str:
    """The first entry in which two run descriptions differ, in words."""
    for key in ("step_fn", "nan_policy", "data", "state"):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            for x, y in zip(a, b):
                if x != y:
                    return f"{key} leaf {x!r} (folder) vs {y!r} (this run)"
            return f"{key} has {len(a)} leaves (folder) vs {len(b)} (this run)"
        return f"{key} {a!r} (folder) vs {b!r} (this run)"
    return "nothing"


# ----------------------------------------------------------------------------
# The lock.


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder, fn: str = "train"):
    """Holds ``folder/.lock`` for the duration; fails if a live process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(path.read_text())
                pid, host = int(owner["pid"]), str(owner["host"])
            except (OSError, ValueError, KeyError, TypeError):
                owner, pid, host = None, None, None
            if owner is not None and host != me["host"]:
                raise RuntimeError(
                    f"{fn}: checkpoint folder {str(folder)!r} is locked by process "
                    f"{pid} on host {host!r} ({str(path)!r}); two runs cannot write "
                    "one folder. Delete the lock file if that run is over."
                ) from None
            if pid is not None and _alive(pid):
                raise RuntimeError(
                    f"{fn}: checkpoint folder {str(folder)!r} is in use by process "
                    f"{pid} ({str(path)!r}); two runs cannot write one folder"
                ) from None
            warnings.warn(
                f"{fn}: removing the stale lock {str(path)!r} of process {pid}, "
                "which no longer runs (it was killed or crashed)",
                RuntimeWarning,
                stacklevel=4,
            )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:  # pragma: no cover - three lost races in a row
        raise RuntimeError(f"{fn}: could not take the lock {str(path)!r}")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_temporaries(folder) -> None:
    """Removes the temporary files and folders an interrupted save left behind."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith((".tmp_", ".tmp-")) or ".orbax-checkpoint-tmp" in name:
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def delete_run(folder, checkpoints) -> None:
    """Deletes the checkpoints, the log and the identity of a run."""
    for path in checkpoints:
        shutil.rmtree(path, ignore_errors=True)
    for name in (LOG_NAME, RUN_NAME):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))


# ----------------------------------------------------------------------------
# Hyperparameters.

HYPER_NAMES = ("hyperparams", "hyper")


def _is_hyper(path) -> bool:
    for entry in path:
        name = getattr(entry, "key", None)
        if name is None:
            name = getattr(entry, "name", None)
        if name in HYPER_NAMES:
            return True
    return False


def hyperparameter_differences(restored, given) -> list[str]:
    """``path: checkpoint vs given`` for every hyperparameter leaf that differs."""
    a, _ = jax.tree_util.tree_flatten_with_path(restored)
    b, _ = jax.tree_util.tree_flatten_with_path(given)
    out = []
    for (path, x), (_, y) in zip(a, b):
        if _is_hyper(path) and not np.array_equal(np.asarray(x), np.asarray(y)):
            out.append(
                f"{jax.tree_util.keystr(path)}: {_fmt(x)} (checkpoint) vs "
                f"{_fmt(y)} (`state`)"
            )
    return out


def take_hyperparameters(restored, given):
    """``restored`` with its hyperparameter leaves replaced by those of ``given``."""
    return jax.tree_util.tree_map_with_path(
        lambda p, x, y: y if _is_hyper(p) else x, restored, given
    )


def _fmt(x):
    x = np.asarray(x)
    return f"{x.item():.6g}" if x.size == 1 else np.array2string(x, precision=6)
