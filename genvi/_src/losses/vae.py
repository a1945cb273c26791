r"""The VAE as variational inference on joint distributions, and its IWAE bounds.

Take the data/encoder joint :math:`p(x,z) = \tilde p(x)\,p(z|x)` and the
model/decoder joint :math:`q(x,z) = q(z)\,q(x|z)` with the prior
:math:`q(z) = \mathcal N(0, I)`. Then

.. math::
    \mathrm{KL}(p(x,z)\,\|\,q(x,z))
    = \mathbb E_{\tilde p(x)}\Big[\mathbb E_{p(z|x)}[-\log q(x|z)]
      + \mathrm{KL}(p(z|x)\,\|\,q(z))\Big] - H(\tilde p),

(Su's post, eqs. (5)-(6)), and :math:`H(\tilde p)` is a constant of the data, so
the VAE loss is the bracket: the negative ELBO (Su's post, eq. (7), with one
reparameterised draw of :math:`z`). Since the joint KL is
:math:`\mathrm{KL}(\tilde p\,\|\,q(x)) + \mathbb E_{\tilde p}\,\mathrm{KL}(p(z|x)\,\|
\,q(z|x))` (Su's post, eq. (4)), it bounds the marginal KL from above, with
equality when the encoder is the exact posterior.

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936 (the VAE section).
  J. Su, *Unifying generative models with variational inference (VAE, GAN, AAE,
  ALI)*, Scientific Spaces 2018, https://kexue.fm/archives/5716 ("Su's post"):
  the author's Chinese version of the paper; "Su's post, eq. (N)" cites its
  equation numbers (the paper's own numbering is unchecked beyond eq. (1)).
  D. P. Kingma and M. Welling, *Auto-Encoding Variational Bayes*, ICLR 2014,
  arXiv:1312.6114.
  Y. Burda, R. Grosse and R. Salakhutdinov, *Importance Weighted Autoencoders*,
  ICLR 2016, arXiv:1509.00519.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from ..core import (
    LossOut,
    _check_x,
    _elbo_terms,
    _importance_log_weights,
    check_likelihood,
    log_mean_exp,
)
from ..distributions import check_num_samples, check_positive_int


def vae_loss(
    key: jax.Array,
    x: jax.Array,
    encoder: Callable,
    decoder: Callable,
    *,
    likelihood: str,
    num_samples: int = 1,
) -> LossOut:
    r"""Mean negative ELBO of a VAE with a standard normal prior.

    .. math::
        \mathcal L = \frac1B\sum_{b=1}^B\Big(\frac1K\sum_{k=1}^K
          -\log q(x_b|z_{bk}) + \mathrm{KL}(p(z|x_b)\,\|\,\mathcal N(0,I))\Big),
        \qquad z_{bk} = \mu(x_b) + \sigma(x_b)\,\varepsilon_{bk},

    the bracket of the joint-KL identity in the module docstring (Su's post,
    eq. (7)):
    :math:`\mathbb E\,\mathcal L = \mathrm{KL}(p(x,z)\,\|\,q(x,z)) + H(\tilde p)`.
    The KL term is in closed form; the reconstruction term uses ``num_samples``
    reparameterised draws per example. The encoder and decoder are any callables
    (Flax nnx modules, Equinox modules, plain functions).

    Args:
      key: a JAX PRNG key.
      x: a batch of data, shape ``(batch, *event_shape)``.
      encoder: ``encoder(x) -> (mean, logvar)`` of :math:`p(z|x)`, each
        ``(batch, *latent_shape)``.
      decoder: ``decoder(z) -> (mean, logvar)`` of :math:`q(x|z)` for
        ``likelihood="gaussian"``, or ``-> logits`` for ``"bernoulli"``, of x's
        shape (with ``K`` samples the decoder sees a batch of ``K * batch``).
      likelihood: ``"gaussian"`` or ``"bernoulli"``.
      num_samples: draws of ``z`` per example, an int >= 1 (default 1).

    Returns:
      ``LossOut(loss, aux)``: the mean negative ELBO and
      ``aux = {"reconstruction", "kl", "negative_elbo"}``, batch means.

    Raises:
      ValueError: unknown ``likelihood``, ``num_samples < 1``, or a decoder
        output whose shape does not match ``x``.
      TypeError: ``num_samples`` not an int, or outputs of the wrong kind.

    Example:
      >>> enc = lambda x: (0.5 * x, jnp.zeros_like(x))
      >>> dec = lambda z: (z, jnp.zeros_like(z))
      >>> out = vae_loss(jax.random.key(0), jnp.ones((4, 3)), enc, dec,
      ...                likelihood="gaussian")
      >>> out.loss.shape, sorted(out.aux)
      ((), ['kl', 'negative_elbo', 'reconstruction'])
    """
    terms = _elbo_terms("vae_loss", key, x, encoder, decoder, likelihood, num_samples)
    reconstruction = jnp.mean(terms.reconstruction)
    kl = jnp.mean(terms.kl)
    loss = reconstruction + kl
    return LossOut(
        loss, {"reconstruction": reconstruction, "kl": kl, "negative_elbo": loss}
    )


def iwae_bound(
    key: jax.Array,
    x: jax.Array,
    encoder: Callable,
    decoder: Callable,
    *,
    likelihood: str,
    num_samples: int,
) -> jax.Array:
    r"""Per-example importance-weighted lower bound on :math:`\log q(x)`.

    .. math::
        \mathcal L_K(x) = \log\frac1K\sum_{k=1}^K
          \frac{q(x|z_k)\,q(z_k)}{p(z_k|x)},\qquad z_k\sim p(z|x),

    with :math:`\mathcal L_1 = \mathrm{ELBO}` in expectation,
    :math:`\mathbb E\,\mathcal L_K \le \mathbb E\,\mathcal L_{K+1} \le \log q(x)`
    and :math:`\mathcal L_K\to\log q(x)` as :math:`K\to\infty`. When the encoder is
    the exact posterior :math:`q(z|x)` every weight equals :math:`q(x)` and the
    bound is exact for every ``K``: the gap is the conditional KL term of the
    joint-KL identity.

    Args:
      key, x, encoder, decoder, likelihood: as for :func:`vae_loss`.
      num_samples: ``K``, an int >= 1 (all ``K * batch`` codes are decoded at
        once; use :func:`iwae_log_likelihood` for large ``K``).

    Returns:
      The bound per example, shape ``(batch,)``.

    Raises:
      ValueError, TypeError: as for :func:`vae_loss`.

    References:
      Y. Burda, R. Grosse and R. Salakhutdinov, *Importance Weighted
      Autoencoders*, ICLR 2016, arXiv:1509.00519.
    """
    log_w = _importance_log_weights(
        "iwae_bound", key, x, encoder, decoder, likelihood, num_samples
    )
    return log_mean_exp(log_w, axis=0)


def iwae_log_likelihood(
    key: jax.Array,
    x: jax.Array,
    encoder: Callable,
    decoder: Callable,
    *,
    likelihood: str,
    num_samples: int = 1000,
    batch_size: int = 100,
    samples_per_chunk: int = 100,
) -> jax.Array:
    r"""Mean IWAE estimate of the test log-likelihood over a dataset.

    .. math::
        \frac1N\sum_{n=1}^N \mathcal L_K(x_n) \;\le\;
        \frac1N\sum_{n=1}^N \log q(x_n),

    with :math:`\mathcal L_K` of :func:`iwae_bound`. One jit-compiled call runs
    ``lax.map`` over chunks of ``batch_size`` examples and, inside each,
    ``lax.scan`` over chunks of ``samples_per_chunk`` samples that accumulates a
    running ``logsumexp``. At most ``batch_size * samples_per_chunk`` codes are
    decoded at once, so memory stays bounded for ``K >= 1000``. The last chunks
    are padded and the padding is masked out, so any ``N`` and ``K`` work. Flax
    nnx modules are passed to the compiled function as state (not baked in as
    constants), so later calls with new weights and the same shapes reuse the
    compiled function; other callables are static arguments (hashed).

    Args:
      key: a JAX PRNG key.
      x: the dataset, shape ``(N, *event_shape)``.
      encoder, decoder, likelihood: as for :func:`vae_loss`.
      num_samples: ``K`` importance samples per example (default 1000).
      batch_size: examples per chunk (default 100).
      samples_per_chunk: samples per inner chunk (default 100).

    Returns:
      The mean bound in nats per example (a scalar).

    Raises:
      ValueError: unknown ``likelihood``, an int argument < 1, an empty ``x``, or
        shapes that do not match (as for :func:`vae_loss`).
      TypeError: an int argument that is not an int.
    """
    fn = "iwae_log_likelihood"
    check_likelihood(fn, likelihood)
    num_samples = check_num_samples(fn, num_samples)
    batch_size = check_positive_int(fn, "batch_size", batch_size)
    samples_per_chunk = check_positive_int(fn, "samples_per_chunk", samples_per_chunk)
    x = _check_x(fn, x)
    n = x.shape[0]
    if n == 0:
        raise ValueError(
            f"{fn}: `x` must hold at least one example, got shape {x.shape}"
        )
    batch_size = min(batch_size, n)
    chunk = min(samples_per_chunk, num_samples)
    num_batches = math.ceil(n / batch_size)
    pad = num_batches * batch_size - n
    # Padding repeats the last example; its bounds are sliced off below.
    x_padded = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)
    x_padded = x_padded.reshape(num_batches, batch_size, *x.shape[1:])

    enc_spec, enc_state = _split(encoder)
    dec_spec, dec_state = _split(decoder)
    static = dict(
        enc_spec=enc_spec,
        dec_spec=dec_spec,
        likelihood=likelihood,
        num_samples=num_samples,
        chunk=chunk,
        n=n,
    )
    try:
        hash(tuple(static.values()))
    except TypeError:
        # An unhashable callable cannot be a static argument: compile a closure
        # (recompiled on every call) instead of the cached function.
        return jax.jit(functools.partial(_iwae_chunked.__wrapped__, **static))(
            key, x_padded, enc_state, dec_state
        )
    return _iwae_chunked(key, x_padded, enc_state, dec_state, **static)


def _split(f: Callable):
    """Static spec and dynamic state of a callable.

    An nnx module becomes its (hashable) graph definition plus its state, so the
    compiled function takes the weights as inputs and is reused across calls with
    new weights; other callables are static as they are.
    """
    if isinstance(f, nnx.Module):
        graphdef, state = nnx.split(f)
        return ("nnx", graphdef), state
    return ("callable", f), None


def _merge(spec, state):
    kind, obj = spec
    return nnx.merge(obj, state) if kind == "nnx" else obj


@functools.partial(
    jax.jit,
    static_argnames=("enc_spec", "dec_spec", "likelihood", "num_samples", "chunk", "n"),
)
def _iwae_chunked(
    key,
    x_padded,
    enc_state,
    dec_state,
    *,
    enc_spec,
    dec_spec,
    likelihood,
    num_samples,
    chunk,
    n,
):
    fn = "iwae_log_likelihood"
    enc, dec = _merge(enc_spec, enc_state), _merge(dec_spec, dec_state)
    num_batches = x_padded.shape[0]
    num_chunks = math.ceil(num_samples / chunk)

    def log_weights(k, xb):
        return _importance_log_weights(fn, k, xb, enc, dec, likelihood, chunk)

    def one_batch(args):
        k, xb = args
        keys = jax.random.split(k, num_chunks)
        # The first chunk sets the accumulator's dtype; it is always full.
        acc = jax.scipy.special.logsumexp(log_weights(keys[0], xb), axis=0)

        def body(acc, inputs):
            ki, ci = inputs
            lw = log_weights(ki, xb)
            valid = ci * chunk + jnp.arange(chunk) < num_samples
            lw = jnp.where(valid[:, None], lw, -jnp.inf)
            lse = jax.scipy.special.logsumexp(lw, axis=0)
            return jnp.logaddexp(acc, lse), None

        acc, _ = jax.lax.scan(body, acc, (keys[1:], jnp.arange(1, num_chunks)))
        return acc - math.log(num_samples)

    keys = jax.random.split(key, num_batches)
    bounds = jax.lax.map(one_batch, (keys, x_padded))
    return jnp.mean(bounds.reshape(-1)[:n])
