r"""Stochastic modified equations of SGD, and noisy discrete paths beside them.

SGD with learning rate :math:`\eta` and stochastic gradients
:math:`\nabla f(x) + \xi`, :math:`\mathrm{Cov}\,\xi = \Sigma(x)` (for a minibatch
of :math:`B` examples, :math:`\Sigma` is the per-example covariance over
:math:`B`), is, in the weak sense and at times :math:`t_k = k\eta`, close to

.. math::
    \text{order 1:}\quad dX = -\nabla f(X)\,dt + \sqrt{\eta\,\Sigma(X)}\,dW,

    \text{order 2:}\quad dX = -\nabla\big(f + \tfrac{\eta}{4}|\nabla f|^2\big)(X)\,dt
    + \sqrt{\eta\,\Sigma(X)}\,dW,

with weak errors :math:`O(\eta)` and :math:`O(\eta^2)` on a fixed horizon.
:func:`stochastic_modified_equation` integrates these with diffrax, many paths at
once under ``jax.vmap``, and can run SGD on the *same* noise (its k-th noise draw
is the Brownian increment over :math:`[t_k, t_{k+1}]`), which makes path-by-path
comparisons and low-variance weak-error estimates possible.
:func:`noisy_paths` runs any optax / dynopt optimiser with Gaussian gradient
noise, vmapped over independent paths.

``noise_covariance`` is one of: a scalar :math:`\sigma^2` (isotropic,
:math:`\Sigma = \sigma^2 I`); an array of shape ``(P,)`` (diagonal) or ``(P, P)``
(full) over the flattened parameters (``ravel_pytree`` order); or a callable
``params -> `` one of those, for state-dependent noise.

References:
  Q. Li, C. Tai, W. E, *Stochastic modified equations and adaptive stochastic
  gradient algorithms*, ICML 2017, arXiv:1511.06251.
  P. Kidger, *On neural differential equations*, PhD thesis, Oxford 2021,
  arXiv:2202.02435 (diffrax).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import lineax
import optax
from jax.flatten_util import ravel_pytree

from .base import (
    check_choice,
    check_count,
    check_learning_rate,
    concrete_value,
    find_field,
)

tree_map = jax.tree_util.tree_map


class Paths(NamedTuple):
    """Sample paths at saved times.

    Attributes:
      times: the saved times, shape ``(T,)`` (ODE time; ``t_k = k lr`` for SGD).
      params: a pytree like the parameters, each leaf with leading axes
        ``(num_paths, T)``.
    """

    times: jax.Array
    params: Any


class SdePaths(NamedTuple):
    """Paths of a stochastic modified equation and, optionally, of SGD beside it.

    Attributes:
      times: saved times ``t = k lr`` for the saved steps ``k``, shape ``(T,)``.
      sme: the SDE's paths, leaves of shape ``(num_paths, T, ...)``.
      sgd: SGD driven by the same Brownian paths (same shapes), or ``None``.
    """

    times: jax.Array
    sme: Any
    sgd: Any


# ----------------------------------------------------------------------------
# Noise: the square root S(x) of Sigma(x), as a lineax operator or a matrix.


def _psd_sqrt(matrix):
    """Symmetric square root of a PSD matrix (eigh; clips rounding negatives)."""
    sym = (matrix + matrix.T) / 2
    w, v = jnp.linalg.eigh(sym)
    return (v * jnp.sqrt(jnp.clip(w, 0.0))) @ v.T


def _noise_kind(fn, noise_covariance, params, size):
    """``"scalar"``, ``"diagonal"`` or ``"full"`` from the (evaluated) shape."""
    if callable(noise_covariance):
        shape = jax.eval_shape(noise_covariance, params).shape
    else:
        if isinstance(noise_covariance, bool):
            raise TypeError(
                f"{fn}: `noise_covariance` must be a number, an array or a "
                f"callable, got {noise_covariance!r}"
            )
        shape = jnp.shape(noise_covariance)
        value = concrete_value(noise_covariance)
        if value is not None and not value >= 0:
            raise ValueError(
                f"{fn}: `noise_covariance` must be >= 0, got {noise_covariance!r}"
            )
    if shape == ():
        return "scalar"
    if shape == (size,):
        return "diagonal"
    if shape == (size, size):
        return "full"
    raise ValueError(
        f"{fn}: `noise_covariance` must be a scalar or have shape ({size},) or "
        f"({size}, {size}) for {size} parameters, got shape {shape}"
    )


def _noise_sqrt(noise_covariance, kind, unravel):
    """``y -> S(y)``: a diagonal (vector) or a matrix with ``S S^T = Sigma``."""

    def cov(y):
        if callable(noise_covariance):
            return jnp.asarray(noise_covariance(unravel(y)), y.dtype)
        return jnp.asarray(noise_covariance, y.dtype)

    if kind == "full":
        return lambda y: _psd_sqrt(cov(y))
    return lambda y: jnp.broadcast_to(jnp.sqrt(cov(y)), y.shape)


def _apply(sqrt, kind, y, z):
    s = sqrt(y)
    return s @ z if kind == "full" else s * z


def _levy_area(solver):
    """The cheapest Brownian-path output the solver accepts."""
    minimal = getattr(solver, "minimal_levy_area", None)
    for area in (
        diffrax.BrownianIncrement,
        diffrax.SpaceTimeLevyArea,
        diffrax.SpaceTimeTimeLevyArea,
    ):
        if minimal is None or issubclass(area, minimal):
            return area
    raise ValueError(f"stochastic_modified_equation: no Brownian path for {solver!r}")


def _check_common(fn, loss_fn, learning_rate, num_steps, save_every, num_paths):
    if not callable(loss_fn):
        raise TypeError(f"{fn}: `loss_fn` must be callable, got {loss_fn!r}")
    check_learning_rate(fn, learning_rate)
    lr = concrete_value(learning_rate)
    if lr is not None and lr <= 0:
        raise ValueError(f"{fn}: `learning_rate` must be > 0, got {learning_rate!r}")
    check_count(fn, "num_steps", num_steps)
    check_count(fn, "save_every", save_every)
    check_count(fn, "num_paths", num_paths)
    if num_steps % save_every:
        raise ValueError(
            f"{fn}: `num_steps` must be a multiple of `save_every` "
            f"({save_every}), got {num_steps!r}"
        )


def _flat_loss(fn, loss_fn, params):
    flat, unravel = ravel_pytree(params)
    if flat.size == 0:
        raise ValueError(f"{fn}: `params` holds no arrays, got {params!r}")
    out = jax.eval_shape(loss_fn, params)
    if out.shape != ():
        raise ValueError(f"{fn}: `loss_fn` must return a scalar, got shape {out.shape}")
    return flat, unravel, lambda y: loss_fn(unravel(y))


def stochastic_modified_equation(
    loss_fn: Callable,
    params,
    learning_rate,
    noise_covariance,
    num_steps: int,
    *,
    key: jax.Array,
    num_paths: int = 1,
    order: int = 1,
    save_every: int = 1,
    substeps: int = 10,
    solver: diffrax.AbstractSolver | None = None,
    brownian: str = "virtual",
    with_sgd: bool = False,
) -> SdePaths:
    r"""Sample paths of the first- or second-order SME of SGD, with diffrax.

    .. math:: dX = -\nabla\big(f + \tfrac{(\mathrm{order}-1)\,\eta}{4}
              |\nabla f|^2\big)(X)\,dt + \sqrt{\eta\,\Sigma(X)}\,dW,
              \qquad X_0 = x_0,

    integrated on :math:`[0, K\eta]` with ``substeps`` solver steps per SGD step
    (a fixed grid, ``diffrax.StepTo``) and saved at :math:`t_k = k\eta` for
    every ``save_every``-th step :math:`k`. With ``with_sgd=True`` the same
    Brownian paths drive SGD,
    :math:`x_{k+1} = x_k - \eta\nabla f(x_k) - \sqrt{\eta}\,S(x_k)
    (W_{t_{k+1}} - W_{t_k})`, i.e. SGD with Gaussian noise of covariance
    :math:`\Sigma`, which is Euler-Maruyama on the first-order SME with step
    :math:`\eta`.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``, the full (expected) loss.
      params: the starting point, a pytree of arrays (``P`` numbers).
      learning_rate: :math:`\eta > 0`.
      noise_covariance: :math:`\Sigma`, the covariance of one stochastic
        gradient's noise (see the module docstring for the accepted forms).
      num_steps: :math:`K \ge 1` SGD steps; the horizon is :math:`K\eta`.
      key: a PRNG key; path ``i`` uses ``jax.random.split(key, num_paths)[i]``.
      num_paths: number of independent paths (vmapped).
      order: 1 or 2.
      save_every: keep every ``save_every``-th step (must divide ``num_steps``).
      substeps: solver steps per SGD step (default 10).
      solver: a diffrax SDE solver (default ``diffrax.Euler()``, i.e.
        Euler-Maruyama, weak order 1). For additive noise ``diffrax.ShARK()`` or
        ``diffrax.SRA1()`` reach weak order 2 with fewer substeps; the
        Brownian path then carries the space-time Levy area they need.
      brownian: ``"virtual"`` (``diffrax.VirtualBrownianTree``, default) or
        ``"unsafe"`` (``diffrax.UnsafeBrownianPath``: faster, not for
        ``with_sgd``).
      with_sgd: also return SGD paths driven by the same noise.

    Returns:
      :class:`SdePaths` with ``times`` ``(T,)`` and paths with leading axes
      ``(num_paths, T)``.

    Raises:
      ValueError / TypeError: bad ``order``, counts, ``brownian``,
        ``with_sgd`` with an unsafe path, a non-scalar loss or a noise shape
        that does not match the parameters.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> out = stochastic_modified_equation(
      ...     lambda x: 0.5 * jnp.sum(x**2), jnp.ones(2), 0.1, 0.25, 10,
      ...     key=jax.random.key(0), num_paths=4, with_sgd=True)
      >>> out.sme.shape, out.sgd.shape
      ((4, 11, 2), (4, 11, 2))

    References:
      Q. Li, C. Tai, W. E, *Stochastic modified equations and adaptive
      stochastic gradient algorithms*, ICML 2017, arXiv:1511.06251.
    """
    fn = "stochastic_modified_equation"
    _check_common(fn, loss_fn, learning_rate, num_steps, save_every, num_paths)
    check_choice(fn, "order", order, (1, 2))
    check_count(fn, "substeps", substeps)
    check_choice(fn, "brownian", brownian, ("virtual", "unsafe"))
    if not isinstance(with_sgd, bool):
        raise TypeError(f"{fn}: `with_sgd` must be a bool, got {with_sgd!r}")
    if with_sgd and brownian != "virtual":
        raise ValueError(
            f"{fn}: `with_sgd=True` needs `brownian='virtual'` (the SGD noise is "
            f"read off the same Brownian path), got {brownian!r}"
        )
    flat0, _, _ = _flat_loss(fn, loss_fn, params)
    kind = _noise_kind(fn, noise_covariance, params, flat0.size)
    solver = diffrax.Euler() if solver is None else solver
    noise_fn, noise_value = _split_noise(noise_covariance)
    sme, sgd, times = _sme_impl(
        params,
        jnp.asarray(learning_rate, flat0.dtype),
        noise_value,
        key,
        jnp.asarray(order),
        loss_fn=loss_fn,
        noise_fn=noise_fn,
        kind=kind,
        num_steps=num_steps,
        num_paths=num_paths,
        save_every=save_every,
        substeps=substeps,
        solver=solver,
        brownian=brownian,
        with_sgd=with_sgd,
    )
    return SdePaths(times=times, sme=sme, sgd=sgd)


def _split_noise(noise_covariance):
    """(static callable or None, array or None): arrays stay traced under jit."""
    if callable(noise_covariance):
        return noise_covariance, None
    return None, jnp.asarray(noise_covariance, jnp.result_type(float))


_SME_STATIC = (
    "loss_fn",
    "noise_fn",
    "kind",
    "num_steps",
    "num_paths",
    "save_every",
    "substeps",
    "solver",
    "brownian",
    "with_sgd",
)


@functools.partial(jax.jit, static_argnames=_SME_STATIC)
def _sme_impl(
    params,
    lr,
    noise_value,
    key,
    order,
    *,
    loss_fn,
    noise_fn,
    kind,
    num_steps,
    num_paths,
    save_every,
    substeps,
    solver,
    brownian,
    with_sgd,
):
    flat0, unravel = ravel_pytree(params)
    lr = lr.astype(flat0.dtype)

    def f(y):
        return loss_fn(unravel(y))

    sqrt = _noise_sqrt(noise_value if noise_fn is None else noise_fn, kind, unravel)
    levy = _levy_area(solver)
    grad_f = jax.grad(f)
    modified_grad = jax.grad(lambda y: f(y) + lr / 4 * jnp.sum(grad_f(y) ** 2))
    root_lr = jnp.sqrt(lr)

    def drift(t, y, args):
        # The order is a traced flag (one compilation serves both orders); the
        # predicate is the same for every path, so vmap keeps a real branch.
        return -jax.lax.cond(order == 2, modified_grad, grad_f, y)

    def diffusion(t, y, args):
        s = root_lr * sqrt(y)
        if kind == "full":
            return lineax.MatrixLinearOperator(s)
        return lineax.DiagonalLinearOperator(s)

    t1 = lr * num_steps
    grid = lr * jnp.arange(num_steps * substeps + 1, dtype=flat0.dtype) / substeps
    saved_steps = jnp.arange(0, num_steps + 1, save_every)
    times = lr * saved_steps.astype(flat0.dtype)
    shape = jax.ShapeDtypeStruct(flat0.shape, flat0.dtype)

    def brownian_path(k):
        if brownian == "unsafe":
            return diffrax.UnsafeBrownianPath(shape=shape, key=k, levy_area=levy)
        # A tolerance well below the solver step resolves every grid point.
        return diffrax.VirtualBrownianTree(
            0.0, t1, tol=lr / (4 * substeps), shape=shape, key=k, levy_area=levy
        )

    def one_path(k):
        bm = brownian_path(k)
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm)
        )
        sol = diffrax.diffeqsolve(
            terms,
            solver,
            0.0,
            t1,
            None,
            flat0,
            stepsize_controller=diffrax.StepTo(ts=grid),
            saveat=diffrax.SaveAt(ts=times),
            max_steps=num_steps * substeps + 1,
            # Forward mode: nothing is differentiated through the paths, and it
            # is the mode diffrax allows for an unsafe Brownian path.
            adjoint=diffrax.ForwardMode(),
        )
        if not with_sgd:
            return sol.ys, None

        def step(x, k_step):
            dw = bm.evaluate(lr * k_step, lr * (k_step + 1))
            # SGD noise xi = -S z with z = dW / sqrt(lr): the same law as S z,
            # and it makes SGD Euler-Maruyama on the SME, path by path.
            x = x - lr * grad_f(x) + root_lr * _apply(sqrt, kind, x, dw)
            return x, x

        _, xs = jax.lax.scan(step, flat0, jnp.arange(num_steps, dtype=flat0.dtype))
        return sol.ys, jnp.concatenate([flat0[None], xs])[saved_steps]

    sme, sgd = jax.vmap(one_path)(jax.random.split(key, num_paths))
    unstack = jax.vmap(jax.vmap(unravel))
    return unstack(sme), None if sgd is None else unstack(sgd), times


def _find_time(state):
    """The ODE time in a (nested) dynopt state, or None for other optimisers."""
    return find_field(state, "time")


def noisy_paths(
    optimizer: optax.GradientTransformation,
    loss_fn: Callable,
    params,
    noise_covariance,
    num_steps: int,
    *,
    key: jax.Array,
    num_paths: int = 1,
    save_every: int = 1,
) -> Paths:
    r"""Runs an optimiser on Gaussian-noised gradients, many independent paths.

    .. math:: \hat g_k = \nabla f(x_k) + S(x_k)\,z_k, \qquad z_k \sim N(0, I),
              \qquad S S^\top = \Sigma,

    fed to ``optimizer`` (any optax transform, e.g. :func:`dynopt.sgd` or
    :func:`dynopt.momentum`), with ``jax.lax.scan`` over steps and ``jax.vmap``
    over paths.

    Args:
      optimizer: an ``optax.GradientTransformation``.
      loss_fn: ``loss_fn(params) -> scalar``.
      params: the starting point, a pytree of arrays.
      noise_covariance: :math:`\Sigma` of one stochastic gradient (see the
        module docstring).
      num_steps: number of steps.
      key: PRNG key.
      num_paths: number of independent paths.
      save_every: keep every ``save_every``-th iterate (must divide
        ``num_steps``).

    Returns:
      :class:`Paths`: ``times`` from the optimiser's clock when it is a dynopt
      optimiser (else the step counts as floats) and the iterates with leading
      axes ``(num_paths, num_steps // save_every + 1)``.

    Raises:
      ValueError / TypeError: bad counts, a non-scalar loss or a noise shape that
        does not match the parameters.

    Example:
      >>> import dynopt, jax, jax.numpy as jnp
      >>> out = noisy_paths(dynopt.momentum(0.05, 0.9), lambda x: 0.5 * x**2,
      ...                   jnp.array(1.0), 0.25, 20, key=jax.random.key(0),
      ...                   num_paths=3, save_every=10)
      >>> out.params.shape
      (3, 3)
    """
    fn = "noisy_paths"
    if not isinstance(optimizer, optax.GradientTransformation | tuple):
        raise TypeError(
            f"{fn}: `optimizer` must be an optax GradientTransformation, "
            f"got {optimizer!r}"
        )
    _check_common(fn, loss_fn, 1.0, num_steps, save_every, num_paths)
    flat0, _, _ = _flat_loss(fn, loss_fn, params)
    kind = _noise_kind(fn, noise_covariance, params, flat0.size)
    noise_fn, noise_value = _split_noise(noise_covariance)
    xs, ts = _noisy_impl(
        params,
        noise_value,
        key,
        optimizer=optimizer,
        loss_fn=loss_fn,
        noise_fn=noise_fn,
        kind=kind,
        num_steps=num_steps,
        num_paths=num_paths,
        save_every=save_every,
    )
    return Paths(times=ts, params=xs)


@functools.partial(
    jax.jit,
    static_argnames=(
        "optimizer",
        "loss_fn",
        "noise_fn",
        "kind",
        "num_steps",
        "num_paths",
        "save_every",
    ),
)
def _noisy_impl(
    params,
    noise_value,
    key,
    *,
    optimizer,
    loss_fn,
    noise_fn,
    kind,
    num_steps,
    num_paths,
    save_every,
):
    flat0, unravel = ravel_pytree(params)
    sqrt = _noise_sqrt(noise_value if noise_fn is None else noise_fn, kind, unravel)
    grad_f = jax.grad(lambda y: loss_fn(unravel(y)))
    num_saved = num_steps // save_every
    has_clock = _find_time(optimizer.init(flat0)) is not None

    def one_path(k):
        state0 = optimizer.init(flat0)

        def step(carry, k_step):
            x, state = carry
            z = jax.random.normal(k_step, x.shape, x.dtype)
            g = grad_f(x) + _apply(sqrt, kind, x, z)
            updates, state = optimizer.update(g, state, x)
            return (optax.apply_updates(x, updates), state), None

        def chunk(carry, keys):
            carry, _ = jax.lax.scan(step, carry, keys)
            t = _find_time(carry[1]) if has_clock else jnp.zeros([])
            return carry, (carry[0], jnp.asarray(t, flat0.dtype))

        step_keys = jax.random.split(k, num_steps)
        step_keys = step_keys.reshape((num_saved, save_every) + step_keys.shape[1:])
        _, (xs, ts) = jax.lax.scan(chunk, (flat0, state0), step_keys)
        return jnp.concatenate([flat0[None], xs]), jnp.concatenate([jnp.zeros(1), ts])

    xs, ts = jax.vmap(one_path)(jax.random.split(key, num_paths))
    if has_clock:
        times = ts[0].astype(flat0.dtype)
    else:
        times = jnp.arange(num_saved + 1, dtype=flat0.dtype) * save_every
    return jax.vmap(jax.vmap(unravel))(xs), times
