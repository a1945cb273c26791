r"""The stochastic view of SGD: gradient noise, its scale, and exact moments.

A minibatch gradient of size :math:`B` drawn from :math:`N` examples is the full
gradient :math:`G = \nabla f(x)` plus noise of covariance :math:`\Sigma(x)/B`,
where :math:`\Sigma` is the covariance of the per-example gradients. SGD with
learning rate :math:`\eta` then behaves like the stochastic modified equation

.. math:: dX = -\nabla f(X)\,dt + \sqrt{\eta\,\Sigma(X)/B}\;dW

(see :mod:`dynopt`'s ``stochastic_modified_equation``), whose noise enters only
through the *temperature* :math:`\eta/B`. This module measures :math:`\Sigma`,
turns it into the noise scale and the critical batch size, gives the batch-size
scaling rules, and gives the exact first two moments of SGD and heavy ball on a
quadratic, against which everything stochastic in the library is tested.

References:
  Q. Li, C. Tai, W. E, *Stochastic modified equations and adaptive stochastic
  gradient algorithms*, ICML 2017, arXiv:1511.06251.
  S. Smith, Q. Le, *A Bayesian perspective on generalization and stochastic
  gradient descent*, ICLR 2018, arXiv:1710.06451.
  S. McCandlish, J. Kaplan, D. Amodei et al., *An empirical model of large-batch
  training*, 2018, arXiv:1812.06162.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .base import (
    check_choice,
    check_interval,
    check_learning_rate,
    check_nonnegative,
    concrete_value,
)

tree_map = jax.tree_util.tree_map


# ----------------------------------------------------------------------------
# Argument checks shared by this module and the SDE module.


def check_positive(fn: str, name: str, value) -> None:
    """``value > 0`` for concrete numbers (traced values pass)."""
    check_nonnegative(fn, name, value)
    v = concrete_value(value)
    if v is not None and v <= 0:
        raise ValueError(f"{fn}: `{name}` must be > 0, got {value!r}")


def _check_batch(fn: str, batch) -> int:
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves:
        raise ValueError(f"{fn}: `batch` must hold at least one array, got {batch!r}")
    sizes = {int(jnp.shape(leaf)[0]) if jnp.ndim(leaf) else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        shapes = [jnp.shape(leaf) for leaf in leaves]
        raise ValueError(
            f"{fn}: every leaf of `batch` must have the same leading (example) "
            f"axis, got shapes {shapes}"
        )
    n = sizes.pop()
    if n < 2:
        raise ValueError(
            f"{fn}: `batch` must hold at least 2 examples to estimate a "
            f"covariance, got {n}"
        )
    return n


# ----------------------------------------------------------------------------
# Per-example gradients and their covariance.


def per_example_gradients(loss_fn: Callable, params, batch):
    r"""The gradient of each example's loss, stacked along a new leading axis.

    .. math:: g_i = \nabla_x \ell(x, z_i), \qquad i = 1, \dots, n

    computed with ``jax.vmap`` of ``jax.grad`` over the examples.

    Args:
      loss_fn: ``loss_fn(params, example) -> scalar``, the loss of one example
        (``example`` is one slice of ``batch`` along its leading axis).
      params: a pytree of arrays.
      batch: a pytree of arrays sharing a leading axis of ``n`` examples.

    Returns:
      A pytree like ``params`` whose leaves have a leading axis of size ``n``.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda x, z: 0.5 * jnp.sum((x - z) ** 2)
      >>> per_example_gradients(loss, jnp.zeros(2), jnp.eye(2)).tolist()
      [[-1.0, 0.0], [0.0, -1.0]]
    """
    return jax.vmap(jax.grad(loss_fn), in_axes=(None, 0))(params, batch)


def _flat_gradients(loss_fn, params, batch):
    grads = per_example_gradients(loss_fn, params, batch)
    return jax.vmap(lambda g: ravel_pytree(g)[0])(grads)


def gradient_covariance(
    loss_fn: Callable,
    params,
    batch,
    *,
    kind: str = "full",
    ddof: int = 1,
    max_bytes: int = 2**30,
):
    r"""Covariance of the per-example gradients on a batch.

    .. math:: \hat\Sigma = \frac{1}{n - \mathrm{ddof}} \sum_{i=1}^n
              (g_i - \bar g)(g_i - \bar g)^\top,
              \qquad \bar g = \frac1n \sum_i g_i

    The covariance of a minibatch gradient of size :math:`B` (drawn with
    replacement) is :math:`\Sigma / B`.

    Args:
      loss_fn: ``loss_fn(params, example) -> scalar``.
      params: a pytree of arrays (``P`` numbers in all).
      batch: a pytree of arrays with a leading axis of ``n >= 2`` examples.
      kind: ``"full"``: the ``(P, P)`` matrix over the flattened parameters
        (``jax.flatten_util.ravel_pytree`` order; small models only);
        ``"diagonal"``: the per-parameter variances as a pytree like
        ``params``; ``"trace"``: :math:`\mathrm{tr}\,\hat\Sigma`, a scalar.
      ddof: 1 (default, as ``numpy.cov``) for an unbiased estimate from a
        sample, 0 when ``batch`` is the whole population.
      max_bytes: the largest ``(P, P)`` matrix ``kind="full"`` builds (default
        1 GiB, about 16,000 float32 parameters); raise it knowingly.

    Returns:
      The matrix, the pytree of variances or the scalar trace.

    Raises:
      ValueError: unknown ``kind``, ``ddof`` not 0 or 1, a batch of fewer than
        two examples or leaves with different leading axes, or a full matrix
        larger than ``max_bytes``.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda x, z: 0.5 * jnp.sum((x - z) ** 2)
      >>> z = jnp.array([[0.0, 1.0], [2.0, 1.0]])
      >>> gradient_covariance(loss, jnp.zeros(2), z).tolist()
      [[2.0, 0.0], [0.0, 0.0]]
    """
    fn = "gradient_covariance"
    check_choice(fn, "kind", kind, ("full", "diagonal", "trace"))
    check_choice(fn, "ddof", ddof, (0, 1))
    n = _check_batch(fn, batch)
    if kind == "full":
        leaves = jax.tree_util.tree_leaves(params)
        size = sum(int(jnp.size(x)) for x in leaves)
        itemsize = jnp.dtype(jnp.result_type(*leaves)).itemsize if leaves else 4
        if size * size * itemsize > max_bytes:
            raise ValueError(
                f"{fn}: kind='full' would build a {size} x {size} matrix "
                f"({size * size * itemsize / 2**20:.0f} MiB) above `max_bytes`="
                f"{max_bytes}; use kind='diagonal' or 'trace', or raise `max_bytes`"
            )
    flat = _flat_gradients(loss_fn, params, batch)
    centred = flat - jnp.mean(flat, axis=0)
    if kind == "full":
        return centred.T @ centred / (n - ddof)
    variances = jnp.sum(centred**2, axis=0) / (n - ddof)
    if kind == "trace":
        return jnp.sum(variances)
    return ravel_pytree(params)[1](variances)


class GradientNoise(NamedTuple):
    """Summary of the gradient noise at a point, from one batch of examples.

    Attributes:
      mean: the mean gradient :math:`\\bar g` (a pytree like ``params``).
      covariance_trace: :math:`\\mathrm{tr}\\,\\hat\\Sigma` of the per-example
        gradients.
      grad_sq_norm: the estimate of :math:`|G|^2` (unbiased:
        :math:`|\\bar g|^2 - \\mathrm{tr}\\hat\\Sigma/n` when the batch is a sample,
        so it can be negative when the batch cannot resolve the gradient).
      critical_batch_size: ``covariance_trace / grad_sq_norm``, the simple noise
        scale :math:`B_\\mathrm{simple}`; ``inf`` when ``grad_sq_norm <= 0`` with
        noise, ``nan`` with neither noise nor gradient (an exact minimum).
      num_examples: ``n``.
    """

    mean: Any
    covariance_trace: jax.Array
    grad_sq_norm: jax.Array
    critical_batch_size: jax.Array
    num_examples: int


def gradient_noise(
    loss_fn: Callable, params, batch, *, sample: bool = True
) -> GradientNoise:
    r"""Mean gradient, noise trace and the simple critical batch size on a batch.

    .. math:: B_\mathrm{simple} = \frac{\mathrm{tr}\,\Sigma}{|G|^2}

    is the batch size at which the minibatch noise :math:`\mathrm{tr}\Sigma/B`
    equals the signal :math:`|G|^2` (McCandlish et al.: for a Hessian
    proportional to the identity, a step with the best learning rate gains
    :math:`1/(1 + B_\mathrm{simple}/B)` of the noiseless gain, so batches well
    below it scale perfectly and batches well above it are wasted).

    Args:
      loss_fn: ``loss_fn(params, example) -> scalar``.
      params: a pytree of arrays.
      batch: a pytree of arrays with a leading axis of ``n >= 2`` examples.
      sample: ``True`` (default) when ``batch`` is a random sample of the data:
        the covariance uses ``ddof = 1`` and :math:`|G|^2` the unbiased
        :math:`|\bar g|^2 - \mathrm{tr}\hat\Sigma / n` (which can come out
        negative for a tiny gradient); ``False`` when ``batch`` is the whole
        data set: ``ddof = 0`` and :math:`|\bar g|^2`.

    Returns:
      A :class:`GradientNoise`.

    Raises:
      ValueError: as :func:`gradient_covariance`.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda x, z: 0.5 * jnp.sum((x - z) ** 2)
      >>> z = jnp.array([[0.0], [2.0]])
      >>> noise = gradient_noise(loss, jnp.array([2.0]), z, sample=False)
      >>> float(noise.critical_batch_size)
      1.0

    References:
      S. McCandlish, J. Kaplan, D. Amodei et al., *An empirical model of
      large-batch training*, 2018, arXiv:1812.06162.
    """
    fn = "gradient_noise"
    if not isinstance(sample, bool):
        raise TypeError(f"{fn}: `sample` must be a bool, got {sample!r}")
    n = _check_batch(fn, batch)
    flat = _flat_gradients(loss_fn, params, batch)
    mean = jnp.mean(flat, axis=0)
    ddof = 1 if sample else 0
    trace = jnp.sum((flat - mean) ** 2) / (n - ddof)
    sq_norm = jnp.sum(mean**2)
    if sample:
        sq_norm = sq_norm - trace / n
    resolved = sq_norm > 0
    critical = jnp.where(
        resolved,
        trace / jnp.where(resolved, sq_norm, 1.0),
        jnp.where(trace > 0, jnp.inf, jnp.nan),
    )
    g2, tr = concrete_value(sq_norm), concrete_value(trace)
    if g2 is not None and tr is not None and g2 <= 0:
        what = (
            f"the estimated |G|^2 = {g2:.3g} is not positive: the batch of {n} "
            f"examples cannot resolve the gradient from its noise (tr Sigma = "
            f"{tr:.3g}); critical_batch_size is inf, use a larger batch"
            if tr > 0
            else "the gradient and its noise are both zero (an exact minimum); "
            "critical_batch_size is undefined (nan)"
        )
        warnings.warn(f"{fn}: {what}", RuntimeWarning, stacklevel=2)
    return GradientNoise(
        mean=ravel_pytree(params)[1](mean),
        covariance_trace=trace,
        grad_sq_norm=sq_norm,
        critical_batch_size=critical,
        num_examples=n,
    )


def critical_batch_size(covariance_trace, grad_sq_norm):
    r"""The simple critical batch size :math:`\mathrm{tr}\,\Sigma/|G|^2`.

    Args:
      covariance_trace: :math:`\mathrm{tr}\,\Sigma` of the per-example gradients.
      grad_sq_norm: :math:`|G|^2` of the full gradient (> 0).

    Returns:
      :math:`B_\mathrm{simple}` as an array.

    Raises:
      ValueError: a negative trace or a non-positive squared norm.

    Example:
      >>> float(critical_batch_size(8.0, 0.5))
      16.0

    References:
      S. McCandlish et al., *An empirical model of large-batch training*, 2018,
      arXiv:1812.06162.
    """
    check_nonnegative("critical_batch_size", "covariance_trace", covariance_trace)
    check_positive("critical_batch_size", "grad_sq_norm", grad_sq_norm)
    return jnp.asarray(covariance_trace) / jnp.asarray(grad_sq_norm)


# ----------------------------------------------------------------------------
# Noise scale and scaling rules.


def noise_scale(learning_rate, dataset_size, batch_size, beta=0.0):
    r"""The SGD noise scale (temperature) :math:`g = \eta N / (B (1 - \beta))`.

    The SME's diffusion is :math:`\eta\Sigma/B`, so runs with the same
    :math:`\eta/B` (times the data-set size :math:`N`, which makes it
    dimensionless) see the same noise; heavy ball with momentum :math:`\beta` is
    SGD at the effective rate :math:`\eta/(1-\beta)`.

    Args:
      learning_rate: :math:`\eta > 0`.
      dataset_size: :math:`N > 0`.
      batch_size: :math:`B > 0`.
      beta: momentum :math:`\beta \in [0, 1)` (default 0).

    Returns:
      The noise scale :math:`g`.

    Raises:
      ValueError: for non-positive sizes or rate, or ``beta`` outside ``[0, 1)``.

    Example:
      >>> round(float(noise_scale(0.1, 50_000, 128, beta=0.9)), 3)
      390.625

    References:
      S. Smith, Q. Le, *A Bayesian perspective on generalization and stochastic
      gradient descent*, ICLR 2018, arXiv:1710.06451.
    """
    fn = "noise_scale"
    check_learning_rate(fn, learning_rate)
    check_positive(fn, "dataset_size", dataset_size)
    check_positive(fn, "batch_size", batch_size)
    check_interval(fn, "beta", beta, 0.0, 1.0)
    lr = jnp.asarray(learning_rate)
    return lr * dataset_size / (batch_size * (1 - jnp.asarray(beta)))


def linear_scaling_rule(learning_rate, batch_size, new_batch_size):
    r"""SGD's linear scaling rule: multiply the batch by k, the learning rate by k.

    .. math:: \eta' = \eta\,B'/B

    keeps the SME temperature :math:`\eta/B` and, per example seen, the drift;
    it holds below the critical batch size and while :math:`\eta'` stays under
    the stability limit.

    Args:
      learning_rate: :math:`\eta` at batch size ``batch_size``.
      batch_size: :math:`B > 0`.
      new_batch_size: :math:`B' > 0`.

    Returns:
      :math:`\eta'`.

    Raises:
      ValueError: non-positive batch sizes or a negative rate.

    Example:
      >>> round(float(linear_scaling_rule(0.1, 256, 8192)), 6)
      3.2

    References:
      P. Goyal, P. Dollar, R. Girshick et al., *Accurate, large minibatch SGD:
      training ImageNet in 1 hour*, 2017, arXiv:1706.02677.
    """
    fn = "linear_scaling_rule"
    check_learning_rate(fn, learning_rate)
    check_positive(fn, "batch_size", batch_size)
    check_positive(fn, "new_batch_size", new_batch_size)
    return jnp.asarray(learning_rate) * new_batch_size / batch_size


class AdamHyperparams(NamedTuple):
    """Adam's hyperparameters after a batch-size change.

    Attributes:
      learning_rate: the step size.
      b1: first-moment decay.
      b2: second-moment decay.
      eps: the denominator's offset.
    """

    learning_rate: jax.Array
    b1: jax.Array
    b2: jax.Array
    eps: jax.Array


def sqrt_scaling_rule(
    learning_rate, batch_size, new_batch_size, *, b1=0.9, b2=0.999, eps=1e-8
) -> AdamHyperparams:
    r"""Adam's square-root scaling rule (Malladi et al. 2022).

    With :math:`\kappa = B'/B`, Adam's SDE approximation is unchanged by

    .. math:: \eta' = \sqrt{\kappa}\,\eta, \quad 1 - \beta_1' = \kappa(1-\beta_1),
              \quad 1 - \beta_2' = \kappa(1-\beta_2), \quad
              \epsilon' = \epsilon/\sqrt{\kappa}.

    Args:
      learning_rate: Adam's :math:`\eta` at ``batch_size``.
      batch_size: :math:`B > 0`.
      new_batch_size: :math:`B' > 0`.
      b1, b2: the decays at ``batch_size`` (optax defaults 0.9, 0.999).
      eps: the offset at ``batch_size`` (optax default 1e-8).

    Returns:
      :class:`AdamHyperparams` for ``new_batch_size`` (pass them to
      ``optax.adam``). The decays are not clipped: a :math:`\kappa` with
      :math:`\kappa(1-\beta) \ge 1` is outside the rule's range.

    Raises:
      ValueError: non-positive batch sizes, a negative rate, decays outside
        ``[0, 1)``.

    Example:
      >>> hp = sqrt_scaling_rule(1e-3, 256, 1024)
      >>> round(float(hp.learning_rate), 6), round(float(hp.b1), 6)
      (0.002, 0.6)

    References:
      S. Malladi, K. Lyu, A. Panigrahi, S. Arora, *On the SDEs and scaling rules
      for adaptive gradient algorithms*, NeurIPS 2022, arXiv:2205.10287.
    """
    fn = "sqrt_scaling_rule"
    check_learning_rate(fn, learning_rate)
    check_positive(fn, "batch_size", batch_size)
    check_positive(fn, "new_batch_size", new_batch_size)
    check_interval(fn, "b1", b1, 0.0, 1.0)
    check_interval(fn, "b2", b2, 0.0, 1.0)
    check_nonnegative(fn, "eps", eps)
    kappa = jnp.asarray(new_batch_size, dtype=jnp.result_type(float)) / batch_size
    root = jnp.sqrt(kappa)
    return AdamHyperparams(
        learning_rate=jnp.asarray(learning_rate) * root,
        b1=1 - kappa * (1 - jnp.asarray(b1)),
        b2=1 - kappa * (1 - jnp.asarray(b2)),
        eps=jnp.asarray(eps) / root,
    )
