r"""Stability of optimisers on quadratics, and sharpness of a loss.

On :math:`f = \frac{h}{2}x^2` every method here is a linear recursion; it is
stable when the spectral radius of its one-step matrix is at most 1. In the
product :math:`a = \mathrm{lr}\cdot h` (optax / PyTorch conventions):

* SGD: :math:`x_{k+1} = (1-a)x_k`, stable for :math:`a \le 2`;
* momentum (heavy ball): :math:`x_{k+1} = (1+\beta-a)x_k - \beta x_{k-1}`, stable for
  :math:`a \le 2(1+\beta)`;
* Nesterov: :math:`x_{k+1} = (1+\beta)(1-a)x_k - \beta(1-a)x_{k-1}`, stable for
  :math:`a \le (2+2\beta)/(1+2\beta)`.

(The boundary is where an eigenvalue crosses :math:`-1`: put :math:`z = -1` in
the characteristic polynomial.) Training drives the sharpness (the top Hessian
eigenvalue) up to about :math:`2/\mathrm{lr}` and keeps it there: the edge of
stability.

References:
  J. Cohen, S. Kaur, Y. Li, J. Kolter, A. Talwalkar, *Gradient descent on neural
  networks typically occurs at the edge of stability*, ICLR 2021,
  arXiv:2103.00065. L. Lessard, B. Recht, A. Packard, *Analysis and design of
  optimization algorithms via integral quadratic constraints*, SIAM J. Optim.
  2016, arXiv:1408.3595.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from .progress import progress_bar
from .trajectory import Trajectory, check_loss_fn, check_params

tree_map = jax.tree_util.tree_map

# The names of the optimisers' dynamics (``opt.dynamics.name``).
_METHODS = ("sgd", "momentum", "nesterov", "heun")
_OLD_NAMES = {"gd": "sgd", "heavy_ball": "momentum"}


def _method_name(fn, method):
    if method in _OLD_NAMES:
        new = _OLD_NAMES[method]
        warnings.warn(
            f"{fn}: method {method!r} is deprecated, use {new!r} (the name of "
            f"dynopt.{new}'s dynamics)",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    return method


def _check_method_beta(fn, method, beta):
    if method not in _METHODS:
        raise ValueError(f"{fn}: `method` must be one of {_METHODS}, got {method!r}")
    if isinstance(beta, int | float) and not 0 <= beta < 1:
        raise ValueError(f"{fn}: `beta` must satisfy 0 <= beta < 1, got {beta!r}")


def stability_limit(method: str, beta=0.0):
    r"""Largest stable ``lr * curvature`` of a method (closed form).

    .. math:: \mathrm{SGD}: 2, \qquad \text{momentum}: 2(1+\beta), \qquad
              \text{Nesterov}: \frac{2+2\beta}{1+2\beta}, \qquad
              \text{Heun}: 2.

    (Heun on :math:`f = \frac h2 x^2` multiplies by :math:`1 - a + a^2/2`,
    whose modulus is at most 1 for :math:`a \le 2`.)

    Args:
      method: the name of an optimiser's dynamics, ``opt.dynamics.name``:
        ``"sgd"``, ``"momentum"``, ``"nesterov"`` or ``"heun"``. The former
        names ``"gd"`` and ``"heavy_ball"`` still work, with a
        ``DeprecationWarning``.
      beta: momentum in ``[0, 1)`` (ignored for SGD and Heun).

    Returns:
      The limit (a float for float input, else an array).

    Raises:
      ValueError: unknown ``method`` or ``beta`` outside ``[0, 1)``.

    Example:
      >>> import dynopt
      >>> opt = dynopt.momentum(0.1, 0.9)
      >>> round(stability_limit(opt.dynamics.name, 0.9), 6), round(
      ...     stability_limit("nesterov", 0.9), 6)
      (3.8, 1.357143)
    """
    method = _method_name("stability_limit", method)
    _check_method_beta("stability_limit", method, beta)
    if method in ("sgd", "heun"):
        return 2.0
    if method == "momentum":
        return 2 * (1 + beta)
    return (2 + 2 * beta) / (1 + 2 * beta)


def step_matrix(optimizer, loss_fn: Callable, params) -> jax.Array:
    r"""Jacobian of one optimiser step with respect to its dynamic state.

    The dynamic state is the parameters and every floating leaf of the
    optimiser state except ``hyperparams`` and ``time`` (e.g. the momentum
    buffer). The Jacobian is taken at ``params`` with the state the optimiser
    has after one step from ``params`` (for linear recursions, such as any
    dynopt method on a quadratic, it does not depend on the point).

    Returns:
      A square matrix of size ``params.size + buffer.size``.
    """
    try:
        hash((optimizer, loss_fn))
        jacobian = _step_matrix
    except TypeError:  # an unhashable callable: compile for this call only
        jacobian = jax.jit(
            _step_matrix.__wrapped__, static_argnames=("optimizer", "loss_fn")
        )
    return jacobian(params, optimizer=optimizer, loss_fn=loss_fn)


# One compiled program per (optimiser, loss, shapes): the functions are static
# arguments hashed by identity, so a second call does not recompile.
@functools.partial(jax.jit, static_argnames=("optimizer", "loss_fn"))
def _step_matrix(params, *, optimizer, loss_fn):
    grad_fn = jax.grad(loss_fn)
    state0 = optimizer.update(grad_fn(params), optimizer.init(params), params)[1]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state0)

    def dynamic(path, leaf):
        names = {getattr(k, "name", getattr(k, "key", None)) for k in path}
        floating = jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating)
        return floating and not names & {"hyperparams", "time", "count"}

    mask = [dynamic(p, leaf) for p, leaf in leaves]
    dyn0 = [leaf for (_, leaf), m in zip(leaves, mask) if m]
    flat0, unravel = ravel_pytree((params, dyn0))

    def step(z):
        p, dyn = unravel(z)
        it = iter(dyn)
        full = [next(it) if m else leaf for (_, leaf), m in zip(leaves, mask)]
        state = jax.tree_util.tree_unflatten(treedef, full)
        u, new_state = optimizer.update(grad_fn(p), state, p)
        new_leaves = jax.tree_util.tree_leaves(new_state)
        new_dyn = [leaf for leaf, m in zip(new_leaves, mask) if m]
        return ravel_pytree((optax.apply_updates(p, u), new_dyn))[0]

    return jax.jacfwd(step)(flat0)


def spectral_radius(matrix) -> float:
    """Largest eigenvalue modulus of a square matrix (numpy, float64)."""
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(matrix, np.float64)))))


def numerical_stability_limit(
    make_optimizer: Callable, *, low: float = 1e-3, high: float = 10.0, tol=1e-7
) -> float:
    r"""Largest stable ``lr * curvature`` found from the one-step Jacobian.

    Bisection on the learning rate ``lr`` of ``make_optimizer(lr)`` applied to
    :math:`f = x^2/2` (curvature 1): the largest ``lr`` with spectral radius of
    :func:`step_matrix` at most 1.

    Args:
      make_optimizer: ``lr -> optimizer`` (``lr`` may be a traced scalar).
      low: a stable ``lr`` to start from.
      high: an unstable ``lr``.
      tol: width of the final bracket.

    Returns:
      The limit, to within ``tol``.

    Raises:
      ValueError: if ``low`` is not stable or ``high`` is not unstable.

    Example:
      >>> import dynopt
      >>> lim = numerical_stability_limit(lambda lr: dynopt.momentum(lr, 0.9))
      >>> round(lim, 4)
      3.8
    """
    fn = "numerical_stability_limit"
    dtype = jnp.result_type(float)

    def loss(x):
        return 0.5 * jnp.sum(x**2)

    jac = jax.jit(lambda lr: step_matrix(make_optimizer(lr), loss, jnp.ones(1, dtype)))

    def rho(lr):
        return spectral_radius(jac(jnp.asarray(lr, dtype)))

    # Rounding in float32 puts the radius at 1 +- 1e-7 on the boundary.
    slack = 1e-12 if dtype == jnp.float64 else 1e-6
    if rho(low) > 1 + slack:
        raise ValueError(f"{fn}: `low` must be a stable learning rate, got {low!r}")
    if rho(high) <= 1 + slack:
        raise ValueError(
            f"{fn}: `high` must be an unstable learning rate, got {high!r}"
        )
    while high - low > tol:
        mid = 0.5 * (low + high)
        if rho(mid) <= 1 + slack:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def _normalize(v):
    norm = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree_util.tree_leaves(v)))
    return tree_map(lambda x: x / norm, v), norm


def _vdot(a, b):
    return sum(
        jnp.vdot(x, y)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    )


def _power_iteration(loss_fn, params, v, num_iters):
    grad_fn = jax.grad(loss_fn)

    def hvp(u):
        return jax.jvp(grad_fn, (params,), (u,))[1]

    def body(_, v):
        return _normalize(hvp(v))[0]

    v = jax.lax.fori_loop(0, num_iters, body, _normalize(v)[0])
    return _vdot(v, hvp(v)), v


def sharpness(
    loss_fn: Callable, params, *, num_iters: int = 100, key=None
) -> jax.Array:
    r"""Dominant Hessian eigenvalue of ``loss_fn`` at ``params`` (power iteration).

    .. math:: v \leftarrow \frac{\nabla^2 f\,v}{\|\nabla^2 f\,v\|}, \qquad
              \lambda = v^\top \nabla^2 f\,v,

    with exact Hessian-vector products (forward over reverse), jitted. Power
    iteration converges to the eigenvalue of largest modulus; near a minimum,
    or whenever the top eigenvalue dominates the most negative one, that is the
    sharpness :math:`\lambda_{\max}`. The error shrinks like
    :math:`(\lambda_2/\lambda_1)^{2k}`.

    Args:
      loss_fn: ``params -> scalar``.
      params: the point (a pytree of finite float arrays).
      num_iters: power iterations (>= 1).
      key: PRNG key of the random start (default ``PRNGKey(0)``).

    Returns:
      The eigenvalue estimate, a scalar array.

    Raises:
      ValueError / TypeError: bad ``params``, non-scalar loss, ``num_iters < 1``.

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(sharpness(lambda x: jnp.sum(jnp.array([1., 5.]) * x**2),
      ...                       jnp.ones(2))), 4)
      10.0
    """
    fn = "sharpness"
    check_params(fn, params)
    check_loss_fn(fn, loss_fn, params)
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"{fn}: `num_iters` must be an int >= 1, got {num_iters!r}")
    key = jax.random.PRNGKey(0) if key is None else key
    v0 = _random_like(key, params)
    return _sharpness(params, v0, loss_fn=loss_fn, num_iters=num_iters)[0]


def _random_like(key, params):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef,
        [
            jax.random.normal(k, jnp.shape(x), jnp.asarray(x).dtype)
            for k, x in zip(keys, leaves)
        ],
    )


@functools.partial(jax.jit, static_argnames=("loss_fn", "num_iters"))
def _sharpness(params, v0, *, loss_fn, num_iters):
    return _power_iteration(loss_fn, params, v0, num_iters)


def sharpness_along(
    loss_fn: Callable,
    trajectory: Trajectory,
    *,
    num_iters: int = 20,
    key=None,
    points_per_call: int = 64,
    progress: bool = True,
) -> jax.Array:
    r"""Sharpness at every kept point of a :class:`~dynopt.Trajectory`.

    Jitted ``lax.scan`` chunks of ``points_per_call`` kept points (one compiled
    program for every chunk; progress is reported after each); each power
    iteration starts from the previous point's eigenvector (warm start), so a
    few iterations per point suffice once the first has converged (the first
    point gets ``10 * num_iters``).

    Args:
      loss_fn: ``params -> scalar``.
      trajectory: e.g. from :func:`dynopt.discrete_trajectory`.
      num_iters: power iterations per point.
      key: PRNG key of the first random start.
      points_per_call: kept points per jitted call (default 64).
      progress: report the points done (default True).

    Returns:
      ``[n]`` sharpness estimates.

    Raises:
      ValueError: ``num_iters`` or ``points_per_call`` < 1, or ``loss_fn`` not
        returning a scalar.
    """
    fn = "sharpness_along"
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise ValueError(f"{fn}: `num_iters` must be an int >= 1, got {num_iters!r}")
    if (
        isinstance(points_per_call, bool)
        or not isinstance(points_per_call, int)
        or points_per_call < 1
    ):
        raise ValueError(
            f"{fn}: `points_per_call` must be an int >= 1, got {points_per_call!r}"
        )
    first = tree_map(lambda a: a[0], trajectory.params)
    check_loss_fn(fn, loss_fn, first)
    key = jax.random.PRNGKey(0) if key is None else key
    n = int(jax.tree_util.tree_leaves(trajectory.params)[0].shape[0])
    size = min(points_per_call, n)

    @jax.jit
    def warm(p0, v0):
        return _power_iteration(loss_fn, p0, v0, 10 * num_iters)[1]

    @jax.jit
    def run(v, params_stack):
        def body(v, p):
            lam, v = _power_iteration(loss_fn, p, v, num_iters)
            return v, lam

        return jax.lax.scan(body, v, params_stack)

    v = warm(first, _random_like(key, first))
    bar = progress_bar(n, progress, fn, unit="points")
    out = []
    for start in range(0, n, size):
        # The last chunk repeats its last point to the common length.
        idx = np.minimum(np.arange(start, start + size), n - 1)
        v, lams = run(v, tree_map(lambda a, i=idx: a[i], trajectory.params))
        out.append(lams[: min(size, n - start)])
        bar.update(min(size, n - start))
    bar.close()
    return jnp.concatenate(out)
