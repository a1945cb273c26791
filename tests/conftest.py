"""Shared fixtures: float64 on demand, 8 host CPU devices for mesh tests.

XLA flags for the test run, set before jax starts (flags already in
``XLA_FLAGS`` win):

* ``--xla_force_host_platform_device_count=8``: mesh tests need several host
  devices.
* ``--xla_backend_optimization_level=0``: the suite is dominated by compiling
  many small programs, and LLVM's optimisation level changes how fast the
  machine code is, not what it computes (XLA's own HLO passes, fusion and cost
  analysis are untouched); measured, it cuts the suite's time by about a
  quarter. Benchmarks and user code keep jax's default level.
"""

import os

_TEST_XLA_FLAGS = {
    "--xla_force_host_platform_device_count": "8",
    "--xla_backend_optimization_level": "0",
}
_flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
    [_flags] + [f"{k}={v}" for k, v in _TEST_XLA_FLAGS.items() if k not in _flags]
).strip()

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    """Turn float64 on for one test and restore the previous setting after it."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
