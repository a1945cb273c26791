r"""GAN losses derived from variational inference on joints with a label ``y``.

Su (2018) adds a binary label ``y`` to the data and writes the two joints

.. math::
    p(x, y) = \begin{cases} \tilde p(x)\, p_1 & y = 1 \\
                            q(x)\, p_0        & y = 0 \end{cases},
    \qquad
    q(x, y) = p(y|x)\, \tilde p(x),

with :math:`\tilde p` the data, :math:`q(x) = \int q(x|z) q(z) dz` the generator
(:math:`q(x|z) = \delta(x - G(z))`, Su's post, eq. (12)) and :math:`D(x) =
p(y=1|x)` the discriminator. (Su names the two joints the other way round: his
:math:`q(x,y)` is the labelled mixture, Su's post, eqs. (13)-(14).) Minimising
:math:`\mathrm{KL}(p(x,y)\,\|\,q(x,y))` over :math:`D` (with :math:`p_1 = p_0 =
1/2`) gives the summed binary cross-entropy of the discriminator (Su's post,
eq. (16)); its minimiser is :math:`D^* = \tilde p / (\tilde p + q)` (Su's post,
eq. (18)), so :math:`\log D^*/(1-D^*)` is the log density ratio. Minimising the
same KL over the generator (Su's post, eq. (17)), with :math:`\tilde p`
eliminated through the discriminator of the *previous* generator
(:math:`\tilde p = q_{old} D/(1-D)`), gives (Su's post, eq. (19))

.. math::
    \mathbb{E}_{x \sim q}[-\log D(x)] + \mathrm{KL}(q(x)\,\|\,q_{old}(x))
    \le \mathbb{E}_z[-\log D(G(z))]
      + \mathbb{E}_z \mathrm{KL}(q(x|z)\,\|\,q_{old}(x|z)),

the bound being the KL between the joints :math:`q(z)q(x|z)` of the new and the
old generator (Su's post, eq. (23)).
With :math:`q(x|z) = \mathcal N(G(z), \sigma^2 I)` (the Dirac delta as the limit
of small-variance Gaussians, Su's post, eq. (24)) the last term is
:math:`\lambda\, \mathbb{E}_z \|G(z) - G_{old}(z)\|^2` with
:math:`\lambda = 1/(2\sigma^2)` (Su's post, eqs. (25)-(26)). The standard
non-saturating loss keeps only the first term (Su's post, eq. (20)): Su calls it
incomplete, because nothing then holds the generator near the distribution the
discriminator was trained against.

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936 (the GAN derivation and its
  regularization term).
  J. Su, *Unifying generative models with variational inference (VAE, GAN, AAE,
  ALI)*, Scientific Spaces 2018, https://kexue.fm/archives/5716 ("Su's post"):
  the author's Chinese version of the paper; "Su's post, eq. (N)" cites its
  equation numbers (the paper's own numbering is unchecked beyond eq. (1)).
  I. Goodfellow et al., *Generative adversarial nets*, NeurIPS 2014,
  arXiv:1406.2661.
  L. Mescheder, A. Geiger, S. Nowozin, *Which training methods for GANs do
  actually converge?*, ICML 2018, arXiv:1801.04406.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ..core import LossOut


def check_logits(fn: str, names: tuple[str, str], a, b) -> None:
    """Raises unless ``a`` and ``b`` are logits of the same shape (B,) or (B, 1)."""
    for name, x in zip(names, (a, b)):
        shape = jnp.shape(x)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ValueError(
                f"{fn}: `{name}` must have shape (batch,) or (batch, 1), got {shape}"
            )
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(
            f"{fn}: `{names[0]}` and `{names[1]}` must have the same shape, got "
            f"{jnp.shape(a)} and {jnp.shape(b)}"
        )
    if jnp.shape(a)[0] == 0:
        raise ValueError(
            f"{fn}: `{names[0]}` and `{names[1]}` must hold at least one logit "
            "(the mean of an empty batch is undefined), got shape "
            f"{jnp.shape(a)}"
        )


def check_weight(fn: str, name: str, value) -> None:
    """Raises if a plain Python weight is negative (arrays pass: they may be traced)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | jax.Array):
        raise TypeError(f"{fn}: `{name}` must be a real number, got {value!r}")
    if isinstance(value, numbers.Real) and not value >= 0:
        raise ValueError(f"{fn}: `{name}` must be >= 0, got {value!r}")


def binary_cross_entropy(
    positive_logits: jax.Array, negative_logits: jax.Array
) -> LossOut:
    r"""Summed BCE ``E[-log sigmoid(a)] + E[-log(1 - sigmoid(b))]`` (batch means).

    Shared by the GAN, AAE and ALI discriminators; shapes are checked by them.
    """
    pos = jnp.mean(jax.nn.softplus(-positive_logits))
    neg = jnp.mean(jax.nn.softplus(negative_logits))
    return LossOut(pos + neg, {"positive": pos, "negative": neg})


def discriminator_bce(
    fn: str, names: tuple[str, str], positive_logits, negative_logits
) -> LossOut:
    """Checked :func:`binary_cross_entropy`, its terms named after the arguments.

    ``names`` are the argument names of ``fn`` (for the error messages); the
    aux keys drop their ``_logits`` suffix (``real_logits`` -> ``real``).
    """
    check_logits(fn, names, positive_logits, negative_logits)
    out = binary_cross_entropy(positive_logits, negative_logits)
    pos, neg = (name.removesuffix("_logits") for name in names)
    return LossOut(out.loss, {pos: out.aux["positive"], neg: out.aux["negative"]})


def gan_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> LossOut:
    r"""The discriminator's loss: summed binary cross-entropy, real vs fake.

    .. math::
        L_D = \mathbb{E}_{x \sim \tilde p}[-\log D(x)]
            + \mathbb{E}_{z}[-\log(1 - D(G(z)))],
        \qquad D = \operatorname{sigmoid}(\text{logit}),

    the term of :math:`\mathrm{KL}(p(x,y)\,\|\,q(x,y))` that depends on
    :math:`D = p(y=1|x)` (module docstring; Su's post, eq. (16)). Its
    minimiser is :math:`D^* = \tilde p/(\tilde p + q)` (Su's post, eq. (18))
    and its minimum is
    :math:`2 (\log 2 - \mathrm{JSD}(\tilde p, q))`; for :math:`\tilde p =
    \mathcal N(0,1)`, :math:`q = \mathcal N(1,1)` that is 1.163451.

    Args:
      real_logits: discriminator logits on data, shape (batch,) or (batch, 1).
      fake_logits: logits on generated samples, the same shape.

    Returns:
      ``LossOut(loss, aux)`` with ``aux = {"real": E[-log D(x)],
      "fake": E[-log(1 - D(G(z)))]}``.

    Raises:
      ValueError: if the logits are not (batch,) / (batch, 1) or differ in shape.

    >>> import jax.numpy as jnp
    >>> out = gan_discriminator_loss(jnp.zeros(4), jnp.zeros(4))
    >>> round(float(out.loss), 6)  # 2 log 2: D = 1/2 everywhere
    1.386294

    References:
      J. Su, *Variational inference: a unified framework of generative models
      and some revelations*, 2018, arXiv:1807.05936; Su's post (module
      docstring), eqs. (13)-(18).
    """
    return discriminator_bce(
        "gan_discriminator_loss",
        ("real_logits", "fake_logits"),
        real_logits,
        fake_logits,
    )


def gan_generator_loss(
    fake_logits: jax.Array,
    fake: jax.Array,
    fake_old: jax.Array,
    *,
    reg_weight,
) -> LossOut:
    r"""The generator's loss with Su's regulariser towards the previous generator.

    .. math::
        L_G = \mathbb{E}_z[-\log D(G(z))]
            + \lambda\, \mathbb{E}_z \|G(z) - G_{old}(z)\|^2,

    the generator-dependent part of :math:`\mathrm{KL}(p(x,y)\,\|\,q(x,y))` with
    the data density eliminated through the current discriminator (module
    docstring; Su's post, eq. (26), from eqs. (17)-(19) and (23)-(25)). The
    second term bounds :math:`\mathrm{KL}(q(x)\,\|\,q_{old}(x))` for Gaussian
    :math:`q(x|z)` of variance :math:`\sigma^2`, :math:`\lambda =
    1/(2\sigma^2)`. ``reg_weight = 0`` is the standard non-saturating loss.
    The squared norm is summed over the sample's dimensions and averaged over
    the batch; ``fake_old`` is held fixed (``stop_gradient``), so at
    :math:`G = G_{old}` the regulariser's gradient is exactly zero.

    Args:
      fake_logits: discriminator logits on ``fake``, shape (batch,) or
        (batch, 1) (with PacGAN packing, one logit per pack).
      fake: generator output ``G(z)``, shape ``(n, *event_shape)``.
      fake_old: the previous generator's output on the same ``z``, same shape.
      reg_weight: :math:`\lambda \ge 0` (a number or a scalar array).

    Returns:
      ``LossOut(loss, aux)`` with ``aux = {"adversarial", "regularizer"}``
      (the regulariser unweighted).

    Raises:
      ValueError: on mismatched or bad shapes, or a negative ``reg_weight``.
      TypeError: if ``reg_weight`` is not a real number.

    >>> import jax.numpy as jnp
    >>> x = jnp.ones((3, 2))
    >>> out = gan_generator_loss(jnp.zeros(3), x, x - 1.0, reg_weight=0.5)
    >>> round(float(out.aux["regularizer"]), 6)  # |(1, 1)|^2 = 2
    2.0

    References:
      J. Su, *Variational inference: a unified framework of generative models
      and some revelations*, 2018, arXiv:1807.05936; Su's post (module
      docstring), eqs. (19)-(26).
    """
    fn = "gan_generator_loss"
    check_weight(fn, "reg_weight", reg_weight)
    logit_shape = jnp.shape(fake_logits)
    if len(logit_shape) not in (1, 2) or (
        len(logit_shape) == 2 and logit_shape[1] != 1
    ):
        raise ValueError(
            f"{fn}: `fake_logits` must have shape (batch,) or (batch, 1), "
            f"got {logit_shape}"
        )
    if jnp.shape(fake) != jnp.shape(fake_old):
        raise ValueError(
            f"{fn}: `fake` and `fake_old` must have the same shape, got "
            f"{jnp.shape(fake)} and {jnp.shape(fake_old)}"
        )
    if jnp.ndim(fake) < 1 or jnp.shape(fake)[0] % logit_shape[0] != 0:
        raise ValueError(
            f"{fn}: `fake` must have a leading batch dimension that is a multiple "
            f"of the number of logits {logit_shape[0]}, got shape {jnp.shape(fake)}"
        )
    adversarial = jnp.mean(jax.nn.softplus(-fake_logits))
    diff = fake - jax.lax.stop_gradient(fake_old)
    regularizer = jnp.mean(jnp.sum(jnp.reshape(diff**2, (diff.shape[0], -1)), axis=1))
    loss = adversarial + reg_weight * regularizer
    return LossOut(loss, {"adversarial": adversarial, "regularizer": regularizer})


def r1_penalty(discriminator: Callable[[jax.Array], jax.Array], real: jax.Array):
    r"""Zero-centred gradient penalty on real data (R1), unweighted.

    .. math::
        R_1 = \mathbb{E}_{x \sim \tilde p} \|\nabla_x f(x)\|^2,

    with :math:`f` the discriminator's logit. Add :math:`(\gamma/2) R_1` to the
    discriminator's loss: it damps the rotation of simultaneous gradient
    descent around the equilibrium (Mescheder et al. 2018, eq. 9).

    Args:
      discriminator: maps a batch ``(batch, *event_shape)`` to logits (batch,) or
        (batch, 1); each logit must depend only on its own example.
      real: a batch of data.

    Returns:
      The scalar batch mean of the squared gradient norms.

    >>> import jax.numpy as jnp
    >>> float(r1_penalty(lambda x: 3.0 * x[:, 0], jnp.ones((5, 2))))
    9.0

    References:
      L. Mescheder, A. Geiger, S. Nowozin, *Which training methods for GANs do
      actually converge?*, ICML 2018, arXiv:1801.04406.
    """
    # Summing the logits gives every example's own input gradient in one pass,
    # because examples do not interact inside the discriminator.
    grads = jax.grad(lambda x: jnp.sum(discriminator(x)))(real)
    return jnp.mean(jnp.sum(jnp.reshape(grads**2, (grads.shape[0], -1)), axis=1))
