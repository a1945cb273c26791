"""Shared fixtures: float64 on demand, 8 host CPU devices for mesh tests."""

import os

# Mesh tests need several host devices; this must be set before jax starts.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

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
