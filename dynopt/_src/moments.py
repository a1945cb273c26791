r"""Exact moments of SGD, heavy ball and their SMEs on quadratics.

On :math:`f(x) = h x^2/2` with gradient noise of variance :math:`\sigma^2` (per
coordinate of an eigenbasis of the Hessian) the first two moments of SGD, heavy
ball and the stochastic modified equations have closed forms; everything
stochastic in the library is tested against them.

References:
  Q. Li, C. Tai, W. E, *Stochastic modified equations and adaptive stochastic
  gradient algorithms*, ICML 2017, arXiv:1511.06251.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .base import (
    check_choice,
    check_interval,
    check_learning_rate,
    concrete_value,
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
