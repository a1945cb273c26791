"""Run the headline benchmarks: ``python -m benchmarks [--quick] [--out DIR]``.

Every benchmark runs even if an earlier one fails; a benchmark that cannot be
imported or raises is reported by name, and the command then exits with status
1 (``cli``), so a broken benchmark cannot pass unnoticed in CI.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

# The headline set, in the order they run. Each module has main(argv) -> dict.
HEADLINE = [
    "benchmarks.sgd_sde",
    "benchmarks.batch_size",
    "benchmarks.learning_rate",
    "benchmarks.momentum",
    "benchmarks.nesterov",
    "benchmarks.conventions",
    "benchmarks.vae_digits",
    "benchmarks.optimizer_speed",
]


def main(argv=None) -> dict:
    """Runs the selected benchmarks; failures are under ``results["failed"]``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the headline dynopt/genvi benchmarks on small defaults.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke-test sizes (default: off)"
    )
    parser.add_argument("--out", default="runs", help="output folder (default: runs)")
    parser.add_argument(
        "--only", nargs="*", default=None, help="run only these modules (default: all)"
    )
    args = parser.parse_args(argv)
    results, failed = {}, {}
    for name in HEADLINE:
        short = name.rsplit(".", 1)[-1]
        if args.only and short not in args.only:
            continue
        print(f"== {short}", flush=True)
        start = time.perf_counter()
        sub = ["--out", f"{args.out}/{short}"] + (["--quick"] if args.quick else [])
        try:
            module = importlib.import_module(name)
            results[short] = module.main(sub)
        except Exception as err:  # noqa: BLE001 - reported, and the exit code fails
            # A missing module or dependency is a failure too, not a skip: the
            # others still run, then the command exits non-zero.
            failed[short] = f"{type(err).__name__}: {err}"
            traceback.print_exc()
            print(f"   FAILED: {name} ({failed[short]})", flush=True)
            continue
        print(f"   ({time.perf_counter() - start:.1f} s)", flush=True)
    if failed:
        print("failed: " + ", ".join(f"{k} ({v})" for k, v in failed.items()))
        results["failed"] = failed
    return results


def cli(argv=None) -> int:
    """``main`` as a command: exit status 1 if any benchmark failed, else 0."""
    return 1 if main(argv).get("failed") else 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
