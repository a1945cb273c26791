"""Test problems shared by the trajectory-laboratory tests.

Sharing the function objects lets the tests reuse compiled solves (the caches of
``jax.jit`` and of ``continuous_trajectory`` are keyed by the loss function).
"""

import jax.numpy as jnp

# docs/reference.md R6: f = x^T diag(1, 4) x / 2, x0 = (1, 1).
R6_CURVATURES = (1.0, 4.0)
# docs/reference.md R2: f = 0.02 x1^2 + 0.005 x2^2, x0 = (1, 1).
R2_CURVATURES = (0.04, 0.01)


def quadratic(x):
    """f = |x|^2 / 2 (docs/reference.md R1 with x0 = 1)."""
    return 0.5 * jnp.sum(x**2)


def r6_quadratic(x):
    return 0.5 * jnp.sum(jnp.asarray(R6_CURVATURES, x.dtype) * x**2)


def r2_quadratic(x):
    return 0.5 * jnp.sum(jnp.asarray(R2_CURVATURES, x.dtype) * x**2)


def wavy(x):
    """A smooth non-quadratic function with an indefinite Hessian away from 0."""
    return jnp.sum(0.5 * x**2 + 0.3 * jnp.sin(2 * x) * x + 0.1 * x**4)
