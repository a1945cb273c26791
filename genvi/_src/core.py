r"""Variational inference on joint distributions: the core terms.

.. math::
    \mathrm{KL}(p(x,z)\,\|\,q(x,z)) = \mathrm{KL}(\tilde p(x)\,\|\,q(x))
      + \mathbb{E}_{\tilde p(x)} \mathrm{KL}(p(z|x)\,\|\,q(z|x))
      \ge \mathrm{KL}(\tilde p(x)\,\|\,q(x)),

(Su's post, eq. (4)), with ``p`` the data/encoder side, ``q`` the model/generator
side, :math:`\tilde p(x) = \int p(x,z)\,dz` the data and
:math:`q(x) = \int q(x,z)\,dz` the model's marginal (Su 2018, eq. (1)). The joint
KL is an upper bound of the marginal KL that is often computable when the
marginal KL is not. Every loss of genvi is a short composition of the terms in
this package.

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936 (section "Variational Inference").
  J. Su, *Unifying generative models with variational inference (VAE, GAN, AAE,
  ALI)*, Scientific Spaces 2018, https://kexue.fm/archives/5716 ("Su's post"):
  the author's Chinese version of the paper, with every equation numbered;
  "Su's post, eq. (N)" cites that numbering. Of the paper's own numbering only
  eq. (1) was checked; it is the post's eq. (1).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .distributions import (
    _as_arrays,
    bernoulli_log_prob,
    check_num_samples,
    gaussian_log_prob,
    reparameterize,
)
from .divergences import gaussian_kl


class LossOut(NamedTuple):
    """What every genvi loss returns.

    Attributes:
      loss: the scalar to minimise (mean over the batch).
      aux: a dict of named scalar terms (e.g. ``reconstruction``, ``kl``).
    """

    loss: jax.Array
    aux: dict


LIKELIHOODS = ("gaussian", "bernoulli")


class ElboTerms(NamedTuple):
    r"""The two terms of the negative ELBO, per example.

    Attributes:
      reconstruction: :math:`\mathbb E_{p(z|x)}[-\log q(x|z)]`, a Monte-Carlo mean
        over the samples of ``z``, shape ``(batch,)``.
      kl: :math:`\mathrm{KL}(p(z|x)\,\|\,q(z))` in closed form, shape ``(batch,)``.
    """

    reconstruction: jax.Array
    kl: jax.Array


class JointKL(NamedTuple):
    r"""The joint KL of a VAE split into the terms of the paper's identity.

    Attributes:
      joint_kl: :math:`\mathrm{KL}(p(x,z)\,\|\,q(x,z))`, the negative ELBO less the
        data entropy.
      negative_elbo: ``reconstruction + kl``.
      reconstruction: :math:`\mathbb E[-\log q(x|z)]`.
      kl: :math:`\mathbb E_{\tilde p}\,\mathrm{KL}(p(z|x)\,\|\,q(z))`.
      data_entropy: :math:`H(\tilde p) = -\mathbb E_{\tilde p}\log\tilde p(x)`.

    All are Monte-Carlo means over the batch (scalars).
    """

    joint_kl: jax.Array
    negative_elbo: jax.Array
    reconstruction: jax.Array
    kl: jax.Array
    data_entropy: jax.Array


def check_likelihood(fn: str, likelihood) -> None:
    """Raise unless ``likelihood`` is one of :data:`LIKELIHOODS`."""
    if not isinstance(likelihood, str) or likelihood not in LIKELIHOODS:
        raise ValueError(
            f"{fn}: `likelihood` must be one of {LIKELIHOODS}, got {likelihood!r}"
        )


def _check_x(fn: str, x) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError(
            f"{fn}: `x` must have a leading batch axis, shape (batch, *event_shape), "
            f"got shape {x.shape}"
        )
    return x


def _check_key(fn: str, key) -> None:
    """A typed PRNG key or raw ``uint32[..., 2]`` key data, else a TypeError."""
    if isinstance(key, jax.Array | jax.core.Tracer) or hasattr(key, "dtype"):
        dtype = getattr(key, "dtype", None)
        if jnp.issubdtype(dtype, jax.dtypes.prng_key):
            return
        if dtype == jnp.uint32 and jnp.shape(key)[-1:] == (2,):
            return
    raise TypeError(
        f"{fn}: `key` must be a PRNG key such as jax.random.key(0), got {key!r}"
    )


def _unit_interval_warning(fn, low, high):
    low, high = float(low), float(high)
    if low < 0.0 or high > 1.0:
        warnings.warn(
            f"{fn}: likelihood='bernoulli' needs data in [0, 1], got values in "
            f"[{low:g}, {high:g}]; rescale the data (e.g. x / x.max()) or use "
            "likelihood='gaussian'",
            UserWarning,
            stacklevel=2,
        )


def _check_unit_interval(fn: str, x: jax.Array) -> None:
    """Warns when Bernoulli data leave [0, 1] (also under jit, from the host)."""
    if not x.size:
        return
    low, high = jnp.min(x), jnp.max(x)
    if not isinstance(low, jax.core.Tracer):
        _unit_interval_warning(fn, low, high)
        return
    jax.lax.cond(
        (low < 0) | (high > 1),
        lambda: jax.debug.callback(
            functools.partial(_unit_interval_warning, fn), low, high
        ),
        lambda: None,
    )


def _encode(fn: str, x: jax.Array, encoder: Callable) -> tuple[jax.Array, jax.Array]:
    out = encoder(x)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TypeError(
            f"{fn}: `encoder(x)` must return a pair (mean, logvar), got "
            f"{type(out).__name__}"
        )
    mean, logvar = jnp.asarray(out[0]), jnp.asarray(out[1])
    if mean.ndim < 1 or mean.shape[0] != x.shape[0]:
        raise ValueError(
            f"{fn}: encoder mean must have shape (batch, *latent_shape) with batch = "
            f"{x.shape[0]} from x's shape {x.shape}, got {mean.shape}"
        )
    try:
        logvar = jnp.broadcast_to(logvar, mean.shape)
    except ValueError:
        raise ValueError(
            f"{fn}: encoder logvar shape {logvar.shape} does not broadcast to the "
            f"encoder mean shape {mean.shape}"
        ) from None
    return mean, logvar


def _decode_log_prob(
    fn: str,
    x: jax.Array,
    z: jax.Array,
    decoder: Callable,
    likelihood: str,
) -> jax.Array:
    """``log q(x|z)`` for ``z`` of shape ``(K, batch, *latent)``; returns (K, batch)."""
    num_samples, batch = z.shape[:2]
    # The decoder sees one flat batch of K * batch codes, as it would in training.
    out = decoder(z.reshape(num_samples * batch, *z.shape[2:]))
    expected = (num_samples * batch, *x.shape[1:])
    if likelihood == "gaussian":
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise TypeError(
                f"{fn}: with likelihood='gaussian', `decoder(z)` must return a pair "
                f"(mean, logvar), got {type(out).__name__}"
            )
        mean, logvar = jnp.asarray(out[0]), jnp.asarray(out[1])
    else:
        if isinstance(out, tuple | list):
            raise TypeError(
                f"{fn}: with likelihood='bernoulli', `decoder(z)` must return one "
                f"array of logits, got a {type(out).__name__} of {len(out)}"
            )
        mean = jnp.asarray(out)
    if mean.shape != expected:
        raise ValueError(
            f"{fn}: decoder output shape {mean.shape} does not match x's shape "
            f"{x.shape} (for {num_samples} sample(s) per example the decoder sees "
            f"a batch of {num_samples * batch} and must return shape {expected})"
        )
    event_ndims = x.ndim - 1
    xk = x[None]
    mean = mean.reshape(num_samples, *x.shape)
    if likelihood == "gaussian":
        try:
            logvar = jnp.broadcast_to(logvar, expected)
        except ValueError:
            raise ValueError(
                f"{fn}: decoder logvar shape {logvar.shape} does not broadcast to "
                f"the decoder mean shape {expected} (x's shape {x.shape})"
            ) from None
        logvar = logvar.reshape(num_samples, *x.shape)
        return gaussian_log_prob(xk, mean, logvar, event_ndims=event_ndims)
    return bernoulli_log_prob(xk, mean, event_ndims=event_ndims)


def elbo_terms(
    key: jax.Array,
    x: jax.Array,
    encoder: Callable,
    decoder: Callable,
    *,
    likelihood: str,
    num_samples: int = 1,
) -> ElboTerms:
    r"""Per-example reconstruction and KL terms of the negative ELBO.

    .. math::
        -\mathrm{ELBO}(x) = \underbrace{\mathbb E_{p(z|x)}[-\log q(x|z)]}_{
          \text{reconstruction}}
          + \underbrace{\mathrm{KL}(p(z|x)\,\|\,\mathcal N(0, I))}_{\text{kl}},

    with the encoder :math:`p(z|x) = \mathcal N(\mu(x), \operatorname{diag}
    e^{\log\sigma^2(x)})`, the expectation a mean over ``num_samples``
    reparameterised draws and the KL in closed form (:func:`gaussian_kl`).

    Args:
      key: a JAX PRNG key.
      x: data of shape ``(batch, *event_shape)``.
      encoder: ``encoder(x) -> (mean, logvar)``, each ``(batch, *latent_shape)``
        (``logvar`` may be anything that broadcasts to ``mean``).
      decoder: ``decoder(z) -> (mean, logvar)`` for ``likelihood="gaussian"`` or
        ``-> logits`` for ``"bernoulli"``, shaped like ``x``.
      likelihood: ``"gaussian"`` or ``"bernoulli"``.
      num_samples: draws of ``z`` per example, an int >= 1.

    Returns:
      :class:`ElboTerms` with arrays of shape ``(batch,)``.

    Raises:
      ValueError: unknown ``likelihood``, ``num_samples < 1``, ``x`` without a
        batch axis, or encoder/decoder outputs whose shapes do not match ``x``.
      TypeError: ``num_samples`` not an int, or outputs of the wrong kind.
    """
    return _elbo_terms("elbo_terms", key, x, encoder, decoder, likelihood, num_samples)


def _encode_sample_decode(fn, key, x, encoder, decoder, likelihood, num_samples):
    """Checks the arguments of ``fn``; returns ``mean, logvar, z, log q(x|z)``.

    ``z`` are ``num_samples`` reparameterised draws from the encoder, shape
    ``(num_samples, batch, *latent_shape)``; ``log q(x|z)`` has shape
    ``(num_samples, batch)``.
    """
    check_likelihood(fn, likelihood)
    num_samples = check_num_samples(fn, num_samples)
    _check_key(fn, key)
    x = _check_x(fn, x)
    if likelihood == "bernoulli":
        _check_unit_interval(fn, x)
    mean, logvar = _encode(fn, x, encoder)
    z = reparameterize(key, mean, logvar, num_samples)
    return mean, logvar, z, _decode_log_prob(fn, x, z, decoder, likelihood)


def _elbo_terms(fn, key, x, encoder, decoder, likelihood, num_samples) -> ElboTerms:
    """:func:`elbo_terms` with ``fn`` naming the public caller in error messages."""
    mean, logvar, _, log_px = _encode_sample_decode(
        fn, key, x, encoder, decoder, likelihood, num_samples
    )
    kl = gaussian_kl(mean, logvar, event_ndims=mean.ndim - 1)
    return ElboTerms(reconstruction=-jnp.mean(log_px, axis=0), kl=kl)


def importance_log_weights(
    key: jax.Array,
    x: jax.Array,
    encoder: Callable,
    decoder: Callable,
    *,
    likelihood: str,
    num_samples: int,
) -> jax.Array:
    r"""Log importance weights of the encoder as a proposal for the posterior.

    .. math::
        \log w_k = \log q(x|z_k) + \log q(z_k) - \log p(z_k|x),\qquad
        z_k \sim p(z|x),

    so that :math:`\mathbb E\,w_k = q(x)` (the model's marginal likelihood).

    Args:
      key, x, encoder, decoder, likelihood, num_samples: as for
        :func:`elbo_terms`.

    Returns:
      The log-weights, shape ``(num_samples, batch)``.

    Raises:
      ValueError, TypeError: as for :func:`elbo_terms`.
    """
    return _importance_log_weights(
        "importance_log_weights", key, x, encoder, decoder, likelihood, num_samples
    )


def _importance_log_weights(
    fn, key, x, encoder, decoder, likelihood, num_samples
) -> jax.Array:
    """:func:`importance_log_weights` naming the public caller in error messages."""
    mean, logvar, z, log_px = _encode_sample_decode(
        fn, key, x, encoder, decoder, likelihood, num_samples
    )
    latent_ndims = mean.ndim - 1
    log_prior = gaussian_log_prob(z, 0.0, 0.0, event_ndims=latent_ndims)
    log_posterior = gaussian_log_prob(z, mean, logvar, event_ndims=latent_ndims)
    return log_px + log_prior - log_posterior


def log_mean_exp(log_weights: jax.Array, axis: int = 0) -> jax.Array:
    r"""The importance-weighted (IWAE) bound from log-weights.

    .. math::
        \mathcal L_K = \log\frac1K\sum_{k=1}^K w_k
          = \operatorname{logsumexp}_k(\log w_k) - \log K
          \;\le\; \log \mathbb E\,w = \log q(x),

    by Jensen's inequality; :math:`\mathcal L_1` is the ELBO, and
    :math:`\mathcal L_K` rises with ``K`` to :math:`\log q(x)`.

    Args:
      log_weights: the log-weights :math:`\log w_k`.
      axis: the axis of the ``K`` samples (static int), default 0.

    Returns:
      The bound, with ``axis`` removed.

    Example:
      >>> float(log_mean_exp(jnp.log(jnp.array([1.0, 3.0]))))  # log 2
      0.6931471...

    References:
      Y. Burda, R. Grosse and R. Salakhutdinov, *Importance Weighted
      Autoencoders*, ICLR 2016, arXiv:1509.00519.
    """
    fn = "log_mean_exp"
    (log_weights,) = _as_arrays(fn, log_weights=log_weights)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{fn}: `axis` must be an int, got {axis!r}")
    if not -log_weights.ndim <= axis < log_weights.ndim:
        raise ValueError(
            f"{fn}: `axis`={axis} is out of range for `log_weights` of shape "
            f"{tuple(log_weights.shape)}"
        )
    count = log_weights.shape[axis]
    if count == 0:
        raise ValueError(
            f"{fn}: `log_weights` has no samples along axis {axis} (shape "
            f"{tuple(log_weights.shape)}); the mean of zero weights is undefined"
        )
    # A Python float is weakly typed: the result keeps the dtype of the weights.
    return jax.scipy.special.logsumexp(log_weights, axis=axis) - math.log(count)


def joint_kl(
    key: jax.Array,
    x: jax.Array,
    encoder: Callable,
    decoder: Callable,
    *,
    likelihood: str,
    data_log_prob: jax.Array,
    num_samples: int = 1,
) -> JointKL:
    r"""Monte-Carlo estimate of the joint KL of a VAE and its decomposition.

    With :math:`p(x,z) = \tilde p(x)\,p(z|x)` (data and encoder) and
    :math:`q(x,z) = q(z)\,q(x|z)` (prior and decoder),

    .. math::
        \mathrm{KL}(p(x,z)\,\|\,q(x,z))
        &= \mathbb E_{\tilde p(x)}\Big[\mathbb E_{p(z|x)}[-\log q(x|z)]
           + \mathrm{KL}(p(z|x)\,\|\,q(z))\Big] - H(\tilde p) \\
        &= \mathbb E_{\tilde p}[-\mathrm{ELBO}(x)] - H(\tilde p)
         = \mathrm{KL}(\tilde p(x)\,\|\,q(x))
           + \mathbb E_{\tilde p}\,\mathrm{KL}(p(z|x)\,\|\,q(z|x)).

    The data entropy does not depend on the model, so minimising the negative
    ELBO minimises the joint KL, an upper bound of the marginal KL. This needs
    :math:`\log\tilde p(x)`, which is known only for synthetic data.

    Args:
      key, x, encoder, decoder, likelihood, num_samples: as for
        :func:`elbo_terms`.
      data_log_prob: :math:`\log\tilde p(x)` per example, shape ``(batch,)``.

    Returns:
      :class:`JointKL`, batch means.

    Raises:
      ValueError: as for :func:`elbo_terms`, or ``data_log_prob`` not of shape
        ``(batch,)``.

    The first line is Su's post, eqs. (5)-(6); the last is its eq. (4).

    References:
      J. Su, *Variational inference: a unified framework of generative models and
      some revelations*, 2018, arXiv:1807.05936 (sections "Variational
      Inference" and the VAE); Su's post (module docstring), eqs. (4)-(6).
    """
    x = _check_x("joint_kl", x)
    data_log_prob = jnp.asarray(data_log_prob)
    if data_log_prob.shape != x.shape[:1]:
        raise ValueError(
            f"joint_kl: `data_log_prob` must have shape (batch,) = {x.shape[:1]}, "
            f"got {data_log_prob.shape}"
        )
    terms = _elbo_terms("joint_kl", key, x, encoder, decoder, likelihood, num_samples)
    reconstruction = jnp.mean(terms.reconstruction)
    kl = jnp.mean(terms.kl)
    data_entropy = -jnp.mean(data_log_prob)
    negative_elbo = reconstruction + kl
    return JointKL(
        joint_kl=negative_elbo - data_entropy,
        negative_elbo=negative_elbo,
        reconstruction=reconstruction,
        kl=kl,
        data_entropy=data_entropy,
    )
