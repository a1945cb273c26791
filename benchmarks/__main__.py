"""Run the headline benchmarks: ``python -m benchmarks [--quick] [--out DIR]``."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

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
    results, skipped = {}, {}
    for name in HEADLINE:
        short = name.rsplit(".", 1)[-1]
        if args.only and short not in args.only:
            continue
        print(f"== {short}", flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            # A benchmark whose module or dependencies are missing is reported,
            # not fatal: the others still run.
            skipped[short] = f"{type(err).__name__}: {err}"
            print(f"   skipped: cannot import {name} ({err})", flush=True)
            continue
        sub = ["--out", f"{args.out}/{short}"] + (["--quick"] if args.quick else [])
        results[short] = module.main(sub)
        print(f"   ({time.perf_counter() - start:.1f} s)", flush=True)
    if skipped:
        print("skipped: " + ", ".join(f"{k} ({v})" for k, v in skipped.items()))
        results["skipped"] = skipped
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
