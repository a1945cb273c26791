"""Shared plumbing for the benchmark scripts: arguments, output files, timing."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np


def parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """An argparse parser with the flags every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--out", default=default_out, help=f"output folder (default: {default_out})"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes for a smoke test (default: off)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return p


def versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ["jax", "jaxlib", "optax", "flax", "diffrax", "numpy", "torch"]:
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except ImportError:
            pass
    out["devices"] = [str(d) for d in jax.devices()]
    out["device_kind"] = jax.devices()[0].device_kind
    out["cpu_count"] = os.cpu_count()
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray | jax.Array):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    return x


def write_outputs(out: str | Path, args: argparse.Namespace, metrics: dict) -> Path:
    """Writes ``config.json`` (arguments, versions, device) and ``metrics.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"args": vars(args), "versions": versions(), "argv": sys.argv}
    (out / "config.json").write_text(json.dumps(_jsonable(config), indent=2))
    (out / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=2))
    return out


def print_table(headers: Sequence[str], rows: Sequence[Sequence], title: str = ""):
    """Prints a Markdown table (so it can be pasted into a docs page as is)."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


@contextlib.contextmanager
def x64():
    """float64 inside the ``with`` block; the caller's setting is restored after."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def block(x):
    return jax.tree_util.tree_map(
        lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, x
    )


def time_call(fn: Callable, *args, repeats: int = 7, number: int = 1) -> dict:
    """Compile/warm up once, then the median of ``repeats`` timings of ``number`` calls.

    Returns seconds per call: ``{"median", "min", "compile", "all"}``.
    """
    start = time.perf_counter()
    block(fn(*args))
    compile_s = time.perf_counter() - start
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            out = fn(*args)
        block(out)
        samples.append((time.perf_counter() - start) / number)
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "compile": compile_s,
        "all": samples,
    }


def savefig(fig, out: str | Path, name: str) -> Path:
    path = Path(out) / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plt():
    """matplotlib.pyplot with a non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
