r"""Log-densities and reparameterised sampling: the likelihood terms of genvi.

All functions are pure, elementwise in their array arguments (with NumPy
broadcasting) and safe under ``jax.jit`` and ``jax.vmap``. ``event_ndims`` sums the
elementwise values over the last ``event_ndims`` axes, which turns a product of
independent one-dimensional densities into the density of one event.

References:
  D. P. Kingma and M. Welling, *Auto-Encoding Variational Bayes*, ICLR 2014,
  arXiv:1312.6114.
"""

from __future__ import annotations

import math
import numbers

import chex
import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


def _check_event_ndims(fn: str, event_ndims, ndim: int) -> None:
    if isinstance(event_ndims, bool) or not isinstance(event_ndims, numbers.Integral):
        raise TypeError(
            f"{fn}: `event_ndims` must be an int, got {type(event_ndims).__name__} "
            f"{event_ndims!r}"
        )
    if not 0 <= event_ndims <= ndim:
        raise ValueError(
            f"{fn}: `event_ndims` must satisfy 0 <= event_ndims <= ndim = {ndim}, "
            f"got {event_ndims!r}"
        )


def _as_arrays(fn: str, **arrays) -> list[jax.Array]:
    """The named arguments as float arrays that broadcast together, else an error."""
    out = []
    for name, value in arrays.items():
        try:
            if isinstance(value, str | bytes):  # NumPy reads "\x00" as a bool
                raise TypeError
            value = jnp.asarray(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{fn}: `{name}` must be a number or an array, got {value!r}"
            ) from None
        if not (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == jnp.bool_):
            raise TypeError(
                f"{fn}: `{name}` must be a number or an array, got dtype {value.dtype}"
            )
        out.append(value)
    try:
        jnp.broadcast_shapes(*(v.shape for v in out))
    except ValueError:
        shapes = ", ".join(f"`{n}` {tuple(v.shape)}" for n, v in zip(arrays, out))
        raise ValueError(
            f"{fn}: the shapes do not broadcast together: {shapes}"
        ) from None
    return out


def _sum_event(fn: str, values: jax.Array, event_ndims: int) -> jax.Array:
    _check_event_ndims(fn, event_ndims, values.ndim)
    if event_ndims == 0:
        return values
    return jnp.sum(values, axis=tuple(range(-event_ndims, 0)))


def gaussian_log_prob(
    x: chex.Array, mean: chex.Numeric, logvar: chex.Numeric, *, event_ndims: int = 0
) -> jax.Array:
    r"""Log-density of a diagonal Gaussian with mean and log-variance.

    .. math::
        \log \mathcal N(x;\mu,\sigma^2) = -\tfrac12\Big(\log 2\pi + \log\sigma^2
          + \frac{(x-\mu)^2}{\sigma^2}\Big),

    summed over the last ``event_ndims`` axes.

    Args:
      x: points, broadcastable with ``mean`` and ``logvar``.
      mean: means :math:`\mu`.
      logvar: log-variances :math:`\log\sigma^2` (the parameterisation keeps the
        variance positive without a constraint).
      event_ndims: how many trailing axes form one event (summed), default 0.

    Returns:
      The log-densities, of the broadcast shape less ``event_ndims`` axes.

    Raises:
      TypeError, ValueError: if ``event_ndims`` is not an int in
        ``[0, ndim]``.

    Example:
      >>> float(gaussian_log_prob(0.0, 0.0, 0.0))  # -log(2 pi)/2
      -0.9189385...
    """
    x, mean, logvar = _as_arrays("gaussian_log_prob", x=x, mean=mean, logvar=logvar)
    values = -0.5 * (_LOG_2PI + logvar + jnp.square(x - mean) * jnp.exp(-logvar))
    return _sum_event("gaussian_log_prob", values, event_ndims)


def bernoulli_log_prob(
    x: chex.Array, logits: chex.Array, *, event_ndims: int = 0
) -> jax.Array:
    r"""Bernoulli log-likelihood from logits, stable for any logit.

    .. math::
        \log p(x\mid\ell) = x \log\sigma(\ell) + (1-x)\log(1-\sigma(\ell))
          = x\,\ell - \operatorname{softplus}(\ell),

    the right-hand side never forms :math:`\sigma(\ell)`, so it is exact for
    logits of any size. For ``x`` in ``[0, 1]`` (grey levels) this is the negative
    binary cross-entropy used by VAEs on images.

    Args:
      x: observations in ``[0, 1]``, broadcastable with ``logits``.
      logits: :math:`\ell = \log p/(1-p)`.
      event_ndims: how many trailing axes form one event (summed), default 0.

    Returns:
      The log-likelihoods, of the broadcast shape less ``event_ndims`` axes.

    Raises:
      TypeError, ValueError: if ``event_ndims`` is not an int in
        ``[0, ndim]``.

    Example:
      >>> float(bernoulli_log_prob(1.0, 0.0))  # log(1/2)
      -0.6931471...
    """
    x, logits = _as_arrays("bernoulli_log_prob", x=x, logits=logits)
    values = x * logits - jax.nn.softplus(logits)
    return _sum_event("bernoulli_log_prob", values, event_ndims)


def reparameterize(
    key: chex.PRNGKey,
    mean: chex.Array,
    logvar: chex.Array,
    num_samples: int | None = None,
) -> jax.Array:
    r"""Samples of a diagonal Gaussian as a differentiable function of its parameters.

    .. math::
        z = \mu + e^{\frac12 \log\sigma^2}\,\varepsilon,\qquad
        \varepsilon\sim\mathcal N(0, I),

    so gradients flow to :math:`\mu` and :math:`\log\sigma^2` (the
    reparameterisation trick).

    Args:
      key: a JAX PRNG key.
      mean: means, any shape.
      logvar: log-variances, broadcastable with ``mean``.
      num_samples: ``None`` for one sample of the broadcast shape, or an int
        ``K >= 1`` for ``K`` samples stacked on a new leading axis.

    Returns:
      Samples of shape ``shape`` or ``(K, *shape)``.

    Raises:
      TypeError, ValueError: if ``num_samples`` is not ``None`` or an int >= 1.
    """
    mean, logvar = jnp.asarray(mean), jnp.asarray(logvar)
    shape = jnp.broadcast_shapes(mean.shape, logvar.shape)
    if num_samples is not None:
        num_samples = check_num_samples("reparameterize", num_samples)
        shape = (num_samples, *shape)
    dtype = jnp.result_type(mean.dtype, logvar.dtype, float)
    eps = jax.random.normal(key, shape, dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


def check_positive_int(fn: str, name: str, value) -> int:
    """Return ``value`` as an int; raise unless it is an integer >= 1.

    Booleans and traced values are refused: such counts fix shapes or loops.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{fn}: `{name}` must be an int >= 1, got {type(value).__name__} {value!r}"
        )
    if value < 1:
        raise ValueError(f"{fn}: `{name}` must be >= 1, got {value!r}")
    return int(value)


def check_num_samples(fn: str, num_samples) -> int:
    """Return ``num_samples`` as an int; raise unless it is an integer >= 1.

    Booleans and traced values are refused: the number of samples fixes a shape.
    """
    return check_positive_int(fn, "num_samples", num_samples)
