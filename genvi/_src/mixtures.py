r"""2-D Gaussian mixtures (ring and grid) and their mode-coverage metrics.

The protocol of the VEEGAN and PacGAN papers: the **ring** has 8 modes on the
unit circle at angles :math:`2\pi i/8`, :math:`i = 0..7` (not
``linspace(0, 2 pi, 8)``, whose endpoint repeats the first mode), standard
deviation 0.01; the **grid** has 25 modes at :math:`\{-4,-2,0,2,4\}^2`,
standard deviation 0.05. From 2,500 generated samples:

- a sample is *high quality* when it lies within 3 standard deviations of its
  nearest mode (for a perfect sampler this happens with probability
  :math:`1 - e^{-9/2} = 0.98889`, the chi distribution with 2 degrees of
  freedom);
- a mode is *covered* when at least one high-quality sample is nearest to it;
- the *reverse KL* is :math:`\mathrm{KL}(h\,\|\,u) = \sum_k h_k \log(K h_k)`,
  with :math:`h` the histogram of the **high-quality** samples over their
  nearest modes (low-quality samples are left out, as in the PacGAN code) and
  :math:`u` uniform over the :math:`K` modes. Empty modes contribute
  :math:`0 \log 0 = 0`; when no sample is high quality the histogram is taken
  as a point mass, :math:`\log K`, the worst value any histogram can have.

References:
  A. Srivastava et al., *VEEGAN: reducing mode collapse in GANs using implicit
  variational learning*, NeurIPS 2017, arXiv:1705.07761.
  Z. Lin, A. Khetan, G. Fanti, S. Oh, *PacGAN: the power of two samples in
  generative adversarial networks*, NeurIPS 2018, arXiv:1712.04086.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# The protocol's sample count and quality radius.
NUM_EVAL_SAMPLES = 2500
HIGH_QUALITY_STDS = 3.0


class Mixture(NamedTuple):
    """An equal-weight isotropic Gaussian mixture in 2-D.

    Attributes:
      name: ``"ring"`` or ``"grid"``.
      means: mode centres, shape (K, 2).
      std: the standard deviation of every mode (a Python float).
    """

    name: str
    means: np.ndarray
    std: float


def mixture(name: str) -> Mixture:
    r"""The ring (8 modes, radius 1, std 0.01) or grid (25 modes, std 0.05).

    Args:
      name: ``"ring"`` or ``"grid"``.

    Returns:
      A :class:`Mixture` with the protocol's geometry.

    Raises:
      ValueError: on another name.

    >>> mixture("ring").means.shape, mixture("grid").means.shape
    ((8, 2), (25, 2))

    References:
      Lin et al., *PacGAN*, NeurIPS 2018, arXiv:1712.04086.
    """
    if name == "ring":
        # 2 pi i / 8 for i = 0..7: eight distinct angles (no repeated endpoint).
        angles = 2.0 * np.pi * np.arange(8) / 8
        means = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return Mixture("ring", means, 0.01)
    if name == "grid":
        axis = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        gx, gy = np.meshgrid(axis, axis, indexing="ij")
        return Mixture("grid", np.stack([gx.ravel(), gy.ravel()], axis=1), 0.05)
    raise ValueError(f"mixture: `name` must be 'ring' or 'grid', got {name!r}")


def sample_mixture(key: jax.Array, mix: Mixture, n: int) -> jax.Array:
    r"""``n`` samples: a uniform mode, plus isotropic noise of the mode's std.

    .. math:: x = \mu_k + \sigma \epsilon, \quad k \sim \mathcal U\{1..K\},
              \ \epsilon \sim \mathcal N(0, I_2).

    Args:
      key: a PRNG key.
      mix: a :class:`Mixture` (from :func:`mixture`).
      n: the number of samples (a Python int >= 1).

    Returns:
      An array of shape (n, 2), float32 (float64 under x64).

    Raises:
      ValueError: if ``n`` is not a positive int.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"sample_mixture: `n` must be an int >= 1, got {n!r}")
    k_mode, k_noise = jax.random.split(key)
    means = jnp.asarray(mix.means, dtype=jnp.result_type(float))
    modes = jax.random.randint(k_mode, (n,), 0, means.shape[0])
    return means[modes] + mix.std * jax.random.normal(k_noise, (n, 2), means.dtype)


def mode_metrics(samples: jax.Array, mix: Mixture) -> dict:
    r"""Modes covered, high-quality fraction and reverse KL (module docstring).

    Pure and jit/vmap-safe (vmap over a leading seed axis of ``samples``).

    Args:
      samples: generated points, shape (n, 2); the protocol uses n = 2500.
      mix: the :class:`Mixture` they should come from.

    Returns:
      A dict of arrays: ``modes`` (int, number of covered modes),
      ``high_quality`` (fraction in [0, 1]), ``reverse_kl`` (nats), ``counts``
      (high-quality samples per mode, shape (K,)).

    Raises:
      ValueError: if ``samples`` is not of shape (n, 2).

    >>> m = mixture("ring")
    >>> out = mode_metrics(jnp.asarray(m.means[:3]), m)
    >>> int(out["modes"]), float(out["high_quality"])
    (3, 1.0)

    References:
      Srivastava et al., *VEEGAN*, 2017, arXiv:1705.07761; Lin et al.,
      *PacGAN*, 2018, arXiv:1712.04086.
    """
    shape = jnp.shape(samples)
    if len(shape) != 2 or shape[1] != 2 or shape[0] < 1:
        raise ValueError(f"mode_metrics: `samples` must have shape (n, 2), got {shape}")
    means = jnp.asarray(mix.means, dtype=samples.dtype)
    k = means.shape[0]
    sq = jnp.sum((samples[:, None, :] - means[None, :, :]) ** 2, axis=-1)
    nearest = jnp.argmin(sq, axis=1)
    dist = jnp.sqrt(jnp.min(sq, axis=1))
    high = dist <= HIGH_QUALITY_STDS * mix.std
    counts = jnp.zeros(k, jnp.int32).at[nearest].add(high.astype(jnp.int32))
    total = jnp.sum(counts)
    h = counts / jnp.maximum(total, 1)
    kl = jnp.sum(jnp.where(counts > 0, h * jnp.log(jnp.where(h > 0, h * k, 1.0)), 0.0))
    kl = jnp.where(total > 0, kl, math.log(k))
    return {
        "modes": jnp.sum(counts > 0),
        "high_quality": jnp.mean(high.astype(samples.dtype)),
        "reverse_kl": kl,
        "counts": counts,
    }
