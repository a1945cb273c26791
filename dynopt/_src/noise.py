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

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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
    loss_fn: Callable, params, batch, *, kind: str = "full", ddof: int = 1
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

    Returns:
      The matrix, the pytree of variances or the scalar trace.

    Raises:
      ValueError: unknown ``kind``, ``ddof`` not 0 or 1, a batch of fewer than
        two examples or leaves with different leading axes.

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
        :math:`|\\bar g|^2 - \\mathrm{tr}\\hat\\Sigma/n` when the batch is a sample).
      critical_batch_size: ``covariance_trace / grad_sq_norm``, the simple noise
        scale :math:`B_\\mathrm{simple}`.
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
    return GradientNoise(
        mean=ravel_pytree(params)[1](mean),
        covariance_trace=trace,
        grad_sq_norm=sq_norm,
        critical_batch_size=trace / sq_norm,
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


# ----------------------------------------------------------------------------
# Exact moments on a quadratic f(x) = h x^2 / 2 with gradient noise of variance
# sigma^2 (per coordinate of an eigenbasis of the Hessian).


def _concrete_array(value):
    """A NumPy array for concrete numbers and arrays, None for tracers."""
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value, dtype=float)


def _check_entries(fn, name, value, strict):
    """Every entry finite and > 0 (``strict``) or >= 0; arrays broadcast."""
    if callable(value) or isinstance(value, bool):
        raise TypeError(f"{fn}: `{name}` must be a number or an array, got {value!r}")
    v = _concrete_array(value)
    if v is None:
        return
    ok = np.isfinite(v) & ((v > 0) if strict else (v >= 0))
    if not np.all(ok):
        rule = "> 0" if strict else ">= 0"
        raise ValueError(f"{fn}: `{name}` must be {rule}, got {value!r}")


def _check_quadratic(fn, learning_rate, curvature, noise_variance, limit=2.0):
    check_learning_rate(fn, learning_rate)
    _check_entries(fn, "curvature", curvature, strict=True)
    _check_entries(fn, "noise_variance", noise_variance, strict=False)
    lr, h = concrete_value(learning_rate), _concrete_array(curvature)
    if lr is not None and h is not None and not np.all((lr * h > 0) & (lr * h < limit)):
        got = lr * h if h.shape == () else lr * h.max()
        raise ValueError(
            f"{fn}: `learning_rate * curvature` must be in (0, {limit:g}) for a "
            f"stationary distribution, got {float(got)!r}"
        )


def sgd_stationary_variance(learning_rate, curvature, noise_variance):
    r"""Exact stationary variance of SGD on :math:`f = h x^2/2`.

    SGD with gradient noise of variance :math:`\sigma^2` (:math:`s^2/B` for a
    batch of :math:`B` examples of per-example variance :math:`s^2`) is
    :math:`x_{k+1} = (1-\eta h)x_k - \eta\xi_k`, so the variance solves
    :math:`v = (1-\eta h)^2 v + \eta^2\sigma^2`:

    .. math:: v_\mathrm{SGD} = \frac{\eta\,\sigma^2}{h\,(2 - \eta h)}
              \quad (0 < \eta h < 2),

    against :math:`\eta\sigma^2/(2h)` for the first-order SME.

    Args:
      learning_rate: :math:`\eta`.
      curvature: :math:`h > 0`.
      noise_variance: :math:`\sigma^2 \ge 0`, the variance of one stochastic
        gradient's noise.

    Returns:
      :math:`v_\mathrm{SGD}`.

    Raises:
      ValueError: ``learning_rate * curvature`` outside ``(0, 2)``, ``h <= 0``
        or a negative variance.

    Example:
      >>> round(float(sgd_stationary_variance(0.1, 1.0, 0.25)), 6)
      0.013158

    References:
      Q. Li, C. Tai, W. E, *Stochastic modified equations and adaptive
      stochastic gradient algorithms*, ICML 2017, arXiv:1511.06251.
    """
    fn = "sgd_stationary_variance"
    _check_quadratic(fn, learning_rate, curvature, noise_variance)
    lr, h = jnp.asarray(learning_rate), jnp.asarray(curvature)
    return lr * jnp.asarray(noise_variance) / (h * (2 - lr * h))


def momentum_stationary_variance(learning_rate, beta, curvature, noise_variance):
    r"""Exact stationary variance of heavy ball on :math:`f = h x^2/2`.

    Momentum in optax/PyTorch form (:math:`m \leftarrow g + \beta m`,
    :math:`x \leftarrow x - \eta m`) with noisy gradients is the AR(2) process
    :math:`x_{k+1} = (1 + \beta - \eta h)x_k - \beta x_{k-1} - \eta\xi_k`, whose
    stationary variance is

    .. math:: v_\mathrm{HB} = \frac{\eta\,\sigma^2\,(1+\beta)}
              {h\,(1-\beta)\,(2 + 2\beta - \eta h)}
              \quad (0 < \eta h < 2 + 2\beta),

    against :math:`\eta\sigma^2/(2h(1-\beta))` for the SME of SGD at the
    effective rate :math:`\eta/(1-\beta)`.

    Args:
      learning_rate: :math:`\eta`.
      beta: :math:`\beta \in [0, 1)`.
      curvature: :math:`h > 0`.
      noise_variance: :math:`\sigma^2 \ge 0`.

    Returns:
      :math:`v_\mathrm{HB}`.

    Raises:
      ValueError: ``learning_rate * curvature`` outside ``(0, 2 + 2 beta)``,
        ``beta`` outside ``[0, 1)``.

    Example:
      >>> round(float(momentum_stationary_variance(0.05, 0.9, 1.0, 0.25)), 5)
      0.06333
    """
    fn = "momentum_stationary_variance"
    check_interval(fn, "beta", beta, 0.0, 1.0)
    b = concrete_value(beta)
    limit = 2.0 + 2.0 * b if b is not None else float("inf")
    _check_quadratic(fn, learning_rate, curvature, noise_variance, limit)
    lr, h, b = jnp.asarray(learning_rate), jnp.asarray(curvature), jnp.asarray(beta)
    sigma2 = jnp.asarray(noise_variance)
    return lr * sigma2 * (1 + b) / (h * (1 - b) * (2 + 2 * b - lr * h))


def sme_stationary_variance(learning_rate, curvature, noise_variance, beta=0.0):
    r"""Stationary variance of the first-order SME on :math:`f = h x^2/2`.

    The Ornstein-Uhlenbeck process :math:`dX = -hX\,dt + \sqrt{\eta'\sigma^2}\,dW`
    with :math:`\eta' = \eta/(1-\beta)` has

    .. math:: v_\mathrm{SME} = \frac{\eta\,\sigma^2}{2h(1-\beta)}.

    Args:
      learning_rate: :math:`\eta`.
      curvature: :math:`h > 0`.
      noise_variance: :math:`\sigma^2 \ge 0`.
      beta: momentum (default 0: plain SGD).

    Returns:
      :math:`v_\mathrm{SME}`.

    Example:
      >>> round(float(sme_stationary_variance(0.1, 1.0, 0.25)), 6)
      0.0125
    """
    fn = "sme_stationary_variance"
    check_learning_rate(fn, learning_rate)
    _check_entries(fn, "curvature", curvature, strict=True)
    _check_entries(fn, "noise_variance", noise_variance, strict=False)
    check_interval(fn, "beta", beta, 0.0, 1.0)
    lr, h, b = jnp.asarray(learning_rate), jnp.asarray(curvature), jnp.asarray(beta)
    return lr * jnp.asarray(noise_variance) / (2 * h * (1 - b))


def sgd_second_moment(learning_rate, curvature, noise_variance, x0, num_steps):
    r"""Exact :math:`\mathbb{E}[x_k^2]` of SGD on :math:`f = h x^2/2`.

    With :math:`q = (1 - \eta h)^2`,

    .. math:: \mathbb{E}[x_k^2] = q^k x_0^2
              + \eta^2\sigma^2\,\frac{1 - q^k}{1 - q}.

    Args:
      learning_rate: :math:`\eta > 0`.
      curvature: :math:`h > 0`.
      noise_variance: :math:`\sigma^2 \ge 0`.
      x0: the starting point.
      num_steps: :math:`k` (an int or an integer array).

    Returns:
      :math:`\mathbb{E}[x_k^2]`.

    Example:
      >>> round(float(sgd_second_moment(0.1, 1.0, 1.0, 1.0, 10)), 6)
      0.167809
    """
    fn = "sgd_second_moment"
    check_learning_rate(fn, learning_rate)
    _check_entries(fn, "curvature", curvature, strict=True)
    _check_entries(fn, "noise_variance", noise_variance, strict=False)
    lr, h = jnp.asarray(learning_rate), jnp.asarray(curvature)
    q = (1 - lr * h) ** 2
    qk = q ** jnp.asarray(num_steps)
    # (1 - q^k)/(1 - q) = sum_{j<k} q^j, written so that q = 1 stays finite.
    geometric = jnp.where(q == 1, jnp.asarray(num_steps, q.dtype), (1 - qk) / (1 - q))
    return qk * jnp.asarray(x0) ** 2 + lr**2 * jnp.asarray(noise_variance) * geometric


def sme_second_moment(learning_rate, curvature, noise_variance, x0, time, order=1):
    r"""Exact :math:`\mathbb{E}[X_t^2]` of the SME of SGD on :math:`f = h x^2/2`.

    Order 1 has drift :math:`-hX`; order 2 has the modified drift
    :math:`-\nabla(f + \frac{\eta}{4}|\nabla f|^2) = -aX` with
    :math:`a = h(1 + \eta h/2)`; both have diffusion :math:`\sqrt{\eta\sigma^2}`.
    For the Ornstein-Uhlenbeck process :math:`dX = -aX\,dt + \sqrt{\eta\sigma^2}\,dW`,

    .. math:: \mathbb{E}[X_t^2] = e^{-2at}x_0^2 + \frac{\eta\sigma^2}{2a}
              (1 - e^{-2at}).

    Args:
      learning_rate: :math:`\eta > 0`.
      curvature: :math:`h > 0`.
      noise_variance: :math:`\sigma^2 \ge 0`.
      x0: the starting point.
      time: :math:`t \ge 0` (SGD's step :math:`k` sits at :math:`t = k\eta`).
      order: 1 or 2.

    Returns:
      :math:`\mathbb{E}[X_t^2]`.

    Raises:
      ValueError: ``order`` not 1 or 2.

    Example:
      >>> round(float(sme_second_moment(0.1, 1.0, 1.0, 1.0, 1.0)), 6)
      0.178569

    References:
      Q. Li, C. Tai, W. E, *Stochastic modified equations and adaptive
      stochastic gradient algorithms*, ICML 2017, arXiv:1511.06251.
    """
    fn = "sme_second_moment"
    check_choice(fn, "order", order, (1, 2))
    check_learning_rate(fn, learning_rate)
    _check_entries(fn, "curvature", curvature, strict=True)
    _check_entries(fn, "noise_variance", noise_variance, strict=False)
    lr, h = jnp.asarray(learning_rate), jnp.asarray(curvature)
    a = h if order == 1 else h * (1 + lr * h / 2)
    decay = jnp.exp(-2 * a * jnp.asarray(time))
    return decay * jnp.asarray(x0) ** 2 + lr * jnp.asarray(noise_variance) / (2 * a) * (
        1 - decay
    )
