r"""Korpelevich, Optimistic and ImplicitEuler against independent references.

On :math:`f(x) = \frac12 x^\top A x` (float64) each scheme's iterates have a
closed form computed here with NumPy: extragradient
:math:`x_{k+1} = (I - hA + h^2A^2)\,x_k`; optimistic
:math:`x_{k+1} = x_k - hA(2x_k - x_{k-1})` with :math:`x_{-1} := x_0` in the
gradient (the first step a gradient step); implicit Euler
:math:`x_{k+1} = (I + hA)^{-1} x_k` (``numpy.linalg.solve``). The schemes run
through :func:`dynopt.discretise`, as an optimiser would.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynopt
from tests import tolerances as tol

A = np.array([[3.0, 1.0], [1.0, 2.0]])
X0 = np.array([1.0, -0.5])
H = 0.15
N = 12


def _loss(x):
    return 0.5 * x @ (jnp.asarray(A) @ x)


def _iterates(scheme, h=H, n=N, loss=_loss, x0=X0):
    opt = dynopt.discretise(dynopt.GradientFlow(), scheme, h)
    grad = jax.grad(loss)

    @jax.jit
    def run(x):
        def body(carry, _):
            x, s = carry
            u, s = opt.update(grad(x), s, x, grad_fn=grad)
            return (x + u, s), x + u

        return jax.lax.scan(body, (x, opt.init(x)), None, length=n)[1]

    return np.asarray(run(jnp.asarray(x0)))


def test_korpelevich_is_the_extragradient_matrix_power(x64):
    step = np.eye(2) - H * A + H**2 * A @ A
    expected = [np.linalg.matrix_power(step, k + 1) @ X0 for k in range(N)]
    np.testing.assert_allclose(
        _iterates(dynopt.Korpelevich()), expected, **tol.F64_ITERATES
    )


def test_optimistic_is_the_two_step_recursion(x64):
    expected, prev, x = [], X0, X0
    for _ in range(N):
        x, prev = x - H * A @ (2 * x - prev), x
        expected.append(x)
    np.testing.assert_allclose(
        _iterates(dynopt.Optimistic()), expected, **tol.F64_ITERATES
    )


@pytest.mark.parametrize(
    "scheme", [dynopt.ImplicitEuler(), dynopt.ImplicitEuler("fixed_point", 60)]
)
def test_implicit_euler_is_the_resolvent(x64, scheme):
    """(I + hA)^{-1} x; the fixed-point map contracts by h |A| = 0.54 (0.54^60)."""
    expected, x = [], X0
    for _ in range(N):
        x = np.linalg.solve(np.eye(2) + H * A, x)
        expected.append(x)
    np.testing.assert_allclose(_iterates(scheme), expected, **tol.F64_ITERATES)


def test_implicit_euler_solves_its_equation_on_a_nonlinear_loss(x64):
    """w = x - h grad f(w) for f = sum(x^4)/4 + x^T A x / 2, at a large step."""

    def loss(x):
        return 0.25 * jnp.sum(x**4) + _loss(x)

    x0 = np.array([1.2, -0.7])
    (w,) = _iterates(dynopt.ImplicitEuler(), h=0.8, n=1, loss=loss, x0=x0)
    rhs = x0 - 0.8 * np.asarray(jax.grad(loss)(jnp.asarray(w)))
    np.testing.assert_allclose(w, rhs, **tol.CLOSED_FORM)


def test_new_scheme_errors():
    with pytest.raises(
        ValueError,
        match=r"ImplicitEuler: `solver` must be one of \('newton', 'fixed_point'\), "
        r"got 'cg'$",
    ):
        dynopt.ImplicitEuler(solver="cg")
    with pytest.raises(
        ValueError, match=r"ImplicitEuler: `iterations` must be >= 1, got 0$"
    ):
        dynopt.ImplicitEuler(iterations=0)
    with pytest.raises(
        TypeError,
        match=r"discretise: `flow` must be one of \('GradientFlow',\) for "
        r"Optimistic, got HeavyBallFlow$",
    ):
        dynopt.discretise(dynopt.HeavyBallFlow(1.0), dynopt.Optimistic(), 0.1)
    opt = dynopt.discretise(dynopt.GradientFlow(), dynopt.ImplicitEuler(), 0.1)
    x = jnp.ones(2)
    with pytest.raises(ValueError, match=r"implicit_euler: a gradient function is"):
        opt.update(x, opt.init(x), x)
