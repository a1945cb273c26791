r"""EM for a Gaussian mixture as variational inference on joint distributions.

With a discrete latent :math:`z\in\{1..K\}`, the data/posterior joint
:math:`p(x,z) = \tilde p(x)\,p(z|x)` and the model joint
:math:`q(x,z) = q(z)\,q(x|z) = \pi_z\,\mathcal N(x;\mu_z,\Sigma_z)`,

.. math::
    \mathrm{KL}(p(x,z)\,\|\,q(x,z)) = \mathrm{KL}(\tilde p(x)\,\|\,q(x))
      + \mathbb E_{\tilde p}\,\mathrm{KL}(p(z|x)\,\|\,q(z|x))

(Su's post, eq. (4)). EM minimises the joint KL (Su's post, eq. (5)) by
coordinate descent:

* **E-step** (over :math:`p(z|x)`, unconstrained): the conditional KL is zero at
  :math:`p(z|x) = q(z|x) = \pi_z\mathcal N(x;\mu_z,\Sigma_z)/q(x)`, the exact
  posterior (the responsibilities), so the joint KL equals the marginal KL
  (Su's post, eqs. (9)-(11)).
* **M-step** (over :math:`q` with :math:`p(z|x) = r_z(x)` fixed): minimise
  :math:`-\mathbb E_{\tilde p}\sum_z r_z(x)\log(\pi_z\mathcal N(x;\mu_z,\Sigma_z))`
  (Su's post, eq. (8)), in closed form: :math:`N_z = \sum_n r_{nz}`,
  :math:`\pi_z = N_z/N`, :math:`\mu_z = \sum_n r_{nz}x_n/N_z`,
  :math:`\Sigma_z = \sum_n r_{nz}(x_n-\mu_z)(x_n-\mu_z)^\top/N_z`.

After an E-step the joint KL equals the marginal KL; the M-step can only lower
the joint KL, which still bounds the marginal KL from above; so the marginal KL
(the negative log-likelihood up to the constant :math:`H(\tilde p)`) never rises.

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936 (the EM section).
  J. Su, *Unifying generative models with variational inference (VAE, GAN, AAE,
  ALI)*, Scientific Spaces 2018, https://kexue.fm/archives/5716 ("Su's post"):
  the author's Chinese version of the paper; "Su's post, eq. (N)" cites its
  equation numbers (the paper's own numbering is unchecked beyond eq. (1)).
  A. P. Dempster, N. M. Laird and D. B. Rubin, *Maximum likelihood from
  incomplete data via the EM algorithm*, JRSS B 1977.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..distributions import check_positive_int


class GMMParams(NamedTuple):
    r"""Parameters of a Gaussian mixture with full covariances.

    Attributes:
      weights: mixing weights :math:`\pi_z`, shape ``(K,)``, summing to one.
      means: component means :math:`\mu_z`, shape ``(K, D)``.
      covariances: component covariances :math:`\Sigma_z`, shape ``(K, D, D)``,
        symmetric positive definite.
    """

    weights: jax.Array
    means: jax.Array
    covariances: jax.Array


def _check(fn: str, x, params) -> tuple[jax.Array, GMMParams]:
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{fn}: `x` must have shape (N, D), got shape {x.shape}")
    if not isinstance(params, GMMParams):
        raise TypeError(
            f"{fn}: `params` must be a GMMParams, got {type(params).__name__}"
        )
    w, m, c = (jnp.asarray(a) for a in params)
    k, d = w.shape[0] if w.ndim == 1 else -1, x.shape[1]
    if w.ndim != 1 or m.shape != (k, d) or c.shape != (k, d, d):
        raise ValueError(
            f"{fn}: `params` must have weights (K,), means (K, D), covariances "
            f"(K, D, D) with D = {d} from x's shape {x.shape}, got weights "
            f"{w.shape}, means {m.shape}, covariances {c.shape}"
        )
    return x, GMMParams(w, m, c)


def _component_log_probs(x: jax.Array, params: GMMParams) -> jax.Array:
    """``log pi_z + log N(x_n; mu_z, Sigma_z)``, shape (N, K), via Cholesky."""
    d = x.shape[1]
    chol = jnp.linalg.cholesky(params.covariances)

    def one(mean, lower):
        y = jax.scipy.linalg.solve_triangular(lower, (x - mean).T, lower=True)
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(lower)))
        return -0.5 * (d * math.log(2 * math.pi) + log_det + jnp.sum(y * y, axis=0))

    log_normal = jax.vmap(one, out_axes=1)(params.means, chol)
    return jnp.log(params.weights) + log_normal


def gmm_log_prob(x: jax.Array, params: GMMParams) -> jax.Array:
    r"""Per-example log-density of a Gaussian mixture.

    .. math::
        \log q(x) = \operatorname{logsumexp}_z\big(\log\pi_z
          + \log\mathcal N(x;\mu_z,\Sigma_z)\big).

    Args:
      x: points, shape ``(N, D)``.
      params: :class:`GMMParams`.

    Returns:
      :math:`\log q(x_n)`, shape ``(N,)``.

    Raises:
      ValueError: shapes of ``x`` and ``params`` that do not agree.
      TypeError: ``params`` not a :class:`GMMParams`.
    """
    x, params = _check("gmm_log_prob", x, params)
    return jax.scipy.special.logsumexp(_component_log_probs(x, params), axis=1)


def gmm_log_likelihood(x: jax.Array, params: GMMParams) -> jax.Array:
    r"""Mean log-likelihood per example, :math:`\frac1N\sum_n\log q(x_n)`.

    The same number as scikit-learn's ``GaussianMixture.score``.

    Args:
      x: points, shape ``(N, D)``.
      params: :class:`GMMParams`.

    Returns:
      A scalar.

    Raises:
      ValueError, TypeError: as for :func:`gmm_log_prob`.
    """
    x, params = _check("gmm_log_likelihood", x, params)
    return jnp.mean(
        jax.scipy.special.logsumexp(_component_log_probs(x, params), axis=1)
    )


def gmm_posterior(x: jax.Array, params: GMMParams) -> jax.Array:
    r"""E-step: the exact posterior (responsibilities) :math:`q(z|x_n)`.

    .. math::
        r_{nz} = \frac{\pi_z\mathcal N(x_n;\mu_z,\Sigma_z)}
          {\sum_{z'}\pi_{z'}\mathcal N(x_n;\mu_{z'},\Sigma_{z'})},

    the choice of :math:`p(z|x)` that makes the conditional KL of the joint-KL
    identity zero (Su's post, eq. (11)).

    Args:
      x: points, shape ``(N, D)``.
      params: :class:`GMMParams`.

    Returns:
      Responsibilities, shape ``(N, K)``, rows summing to one.

    Raises:
      ValueError, TypeError: as for :func:`gmm_log_prob`.
    """
    x, params = _check("gmm_posterior", x, params)
    return jax.nn.softmax(_component_log_probs(x, params), axis=1)


def _m_step(x: jax.Array, resp: jax.Array, reg_covar) -> GMMParams:
    counts = jnp.sum(resp, axis=0)
    means = resp.T @ x / counts[:, None]
    diff = x[None, :, :] - means[:, None, :]
    cov = jnp.einsum("nk,kni,knj->kij", resp, diff, diff) / counts[:, None, None]
    cov = cov + reg_covar * jnp.eye(x.shape[1], dtype=x.dtype)
    return GMMParams(counts / x.shape[0], means, cov)


def gmm_m_step(x: jax.Array, resp: jax.Array, *, reg_covar: float = 0.0) -> GMMParams:
    r"""M-step: the closed-form mixture that minimises the joint KL for fixed
    responsibilities.

    The maximiser of :math:`\mathbb E_{\tilde p}\sum_z r_z(x)\log q(x,z)` (Su's
    post, eq. (8), which holds :math:`q(z)` fixed; here the weights
    :math:`\pi_z = q(z)` are fitted too):

    .. math::
        N_z = \sum_n r_{nz},\quad \pi_z = \frac{N_z}{N},\quad
        \mu_z = \frac{1}{N_z}\sum_n r_{nz}x_n,\quad
        \Sigma_z = \frac{1}{N_z}\sum_n r_{nz}(x_n-\mu_z)(x_n-\mu_z)^\top
          + \epsilon I.

    Args:
      x: points, shape ``(N, D)``.
      resp: responsibilities, shape ``(N, K)``.
      reg_covar: :math:`\epsilon \ge 0` added to the covariance diagonals (keeps
        them positive definite; with :math:`\epsilon > 0` the step is no longer
        the exact minimiser). Default 0.

    Returns:
      The new :class:`GMMParams`.

    Raises:
      ValueError: shapes that do not agree, or ``reg_covar < 0``.
    """
    x, resp = jnp.asarray(x), jnp.asarray(resp)
    if x.ndim != 2 or resp.ndim != 2 or resp.shape[0] != x.shape[0]:
        raise ValueError(
            f"gmm_m_step: `x` must be (N, D) and `resp` (N, K), got shapes {x.shape} "
            f"and {resp.shape}"
        )
    _check_reg("gmm_m_step", reg_covar)
    return _m_step(x, resp, reg_covar)


def _check_reg(fn: str, reg_covar) -> None:
    if isinstance(reg_covar, numbers.Real) and not reg_covar >= 0:
        raise ValueError(f"{fn}: `reg_covar` must be >= 0, got {reg_covar!r}")


def gmm_em(
    x: jax.Array,
    init_params: GMMParams,
    num_iters: int,
    *,
    reg_covar: float = 0.0,
) -> tuple[GMMParams, jax.Array]:
    r"""Fit a Gaussian mixture by EM: alternate the exact E-step and closed M-step.

    Each iteration computes the responsibilities :math:`r = q(z|x)` at the current
    parameters (:func:`gmm_posterior`), which also gives the log-likelihood, then
    the M-step (:func:`gmm_m_step`). The iterations run in one jit-compiled
    ``lax.scan``. As derived in the module docstring, the log-likelihood never
    decreases (with ``reg_covar = 0``).

    Args:
      x: data, shape ``(N, D)``.
      init_params: starting :class:`GMMParams`.
      num_iters: EM iterations, an int >= 1.
      reg_covar: diagonal added to each covariance in the M-step (default 0; a
        small positive value such as 1e-6 guards against collapsing components).

    Returns:
      ``(params, log_likelihoods)``: the parameters after ``num_iters`` steps and
      the mean log-likelihood before each step and after the last, shape
      ``(num_iters + 1,)``.

    Raises:
      ValueError: shapes that do not agree, ``num_iters < 1`` or
        ``reg_covar < 0``.
      TypeError: ``num_iters`` not an int or ``params`` not a :class:`GMMParams`.

    Example:
      >>> x = jax.random.normal(jax.random.key(0), (100, 2))
      >>> p0 = GMMParams(jnp.ones(2) / 2, x[:2], jnp.stack([jnp.eye(2)] * 2))
      >>> params, lls = gmm_em(x, p0, 10)
      >>> lls.shape
      (11,)
    """
    fn = "gmm_em"
    x, init_params = _check(fn, x, init_params)
    num_iters = check_positive_int(fn, "num_iters", num_iters)
    _check_reg(fn, reg_covar)
    return _gmm_em(x, init_params, num_iters, reg_covar)


@functools.partial(jax.jit, static_argnums=2)
def _gmm_em(x, params, num_iters, reg_covar):
    def step(params, _):
        log_joint = _component_log_probs(x, params)
        log_px = jax.scipy.special.logsumexp(log_joint, axis=1)
        resp = jnp.exp(log_joint - log_px[:, None])
        return _m_step(x, resp, reg_covar), jnp.mean(log_px)

    params, history = jax.lax.scan(step, params, None, length=num_iters)
    final = jnp.mean(
        jax.scipy.special.logsumexp(_component_log_probs(x, params), axis=1)
    )
    return params, jnp.append(history, final)
