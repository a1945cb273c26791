r"""Closed-form divergences between the distributions of genvi.

References:
  D. P. Kingma and M. Welling, *Auto-Encoding Variational Bayes*, ICLR 2014,
  arXiv:1312.6114 (Appendix B).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from .distributions import _as_arrays, _sum_event


def gaussian_kl(
    mean_p: chex.Array,
    logvar_p: chex.Array,
    mean_q: chex.Numeric = 0.0,
    logvar_q: chex.Numeric = 0.0,
    *,
    event_ndims: int = 0,
) -> jax.Array:
    r"""KL divergence between two diagonal Gaussians, in closed form.

    .. math::
        \mathrm{KL}\big(\mathcal N(\mu_p,\sigma_p^2)\,\|\,
          \mathcal N(\mu_q,\sigma_q^2)\big)
        = \tfrac12\Big(\log\frac{\sigma_q^2}{\sigma_p^2}
          + \frac{\sigma_p^2 + (\mu_p-\mu_q)^2}{\sigma_q^2} - 1\Big)

    per coordinate, summed over the last ``event_ndims`` axes. The defaults of
    ``mean_q`` and ``logvar_q`` give the KL to the standard normal prior,
    :math:`\tfrac12(\mu^2 + \sigma^2 - \log\sigma^2 - 1)`.

    Args:
      mean_p: means of the first argument ``p``.
      logvar_p: log-variances of ``p``.
      mean_q: means of the second argument ``q`` (default 0).
      logvar_q: log-variances of ``q`` (default 0).
      event_ndims: how many trailing axes form one event (summed), default 0.

    Returns:
      :math:`\mathrm{KL}(p\,\|\,q) \ge 0`, of the broadcast shape less
      ``event_ndims`` axes.

    Raises:
      TypeError, ValueError: if ``event_ndims`` is not an int in
        ``[0, ndim]``.

    Example:
      >>> float(gaussian_kl(1.0, 0.0))  # N(1, 1) against N(0, 1)
      0.5
    """
    mean_p, logvar_p, mean_q, logvar_q = _as_arrays(
        "gaussian_kl",
        mean_p=mean_p,
        logvar_p=logvar_p,
        mean_q=mean_q,
        logvar_q=logvar_q,
    )
    values = 0.5 * (
        logvar_q
        - logvar_p
        # exp(logvar_p - logvar_q) rather than a ratio of exponentials: no overflow
        # when both log-variances are large.
        + jnp.exp(logvar_p - logvar_q)
        + jnp.square(mean_p - mean_q) * jnp.exp(-logvar_q)
        - 1.0
    )
    return _sum_event("gaussian_kl", values, event_ndims)
