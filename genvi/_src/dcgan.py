r"""DCGAN-style convolutional networks for small images with 1 or 3 channels.

Every network works on images of shape ``(batch, H, W, C)`` (``image_shape =
(H, W, C)``) or ``(batch, H, W)`` (``image_shape = (H, W)``: one channel, no
channel axis, the layout of :func:`genvi.load_mnist` with ``flatten=False``),
with ``H`` and ``W`` divisible by 4 (two stride-2 stages: 28 -> 14 -> 7).

- :class:`DCGANGenerator`: ``z -> H/4 x W/4`` features (linear) -> two 2x
  upsampling convolutions -> an image; its ``output`` makes it a GAN generator
  (``"sigmoid"``: pixels in (0, 1)) or a VAE decoder (``"bernoulli"`` logits or
  ``"gaussian"`` mean and log-variance).
- :class:`DCGANEncoder`: two 4x4 stride-2 convolutions -> a linear head, giving
  ``(mean, logvar)`` (VAE) or one code (ALI, AAE).
- :class:`DCGANDiscriminator`: the encoder's trunk with one logit; it also takes
  the flat inputs of the trainers: PacGAN-packed samples (stacked as channels,
  as in Lin et al.'s convolutional PacGAN) and ALI's ``[x, z]`` pairs (``z``
  joined after the convolutions).

No batch normalisation: the trainers treat a network as a pure function of its
parameters, and the DCGAN paper's batch statistics would make a sample depend on
its batch. Activations are ReLU in the generator and leaky ReLU (0.2) elsewhere,
as in Radford et al.

Upsampling (``upsample``): ``"subpixel"`` (a 3x3 convolution to 4x the channels,
then depth-to-space; Shi et al. 2016), ``"resize"`` (nearest-neighbour 2x, then
a 3x3 convolution; Odena et al. 2016) or ``"transpose"`` (a 4x4 stride-2
transposed convolution, the DCGAN original). They differ in speed on XLA:CPU,
not in what they can represent to first order; ``"subpixel"`` is the default
because it was the fastest in a profile of a VAE step (``benchmarks/conv_speed.py``
times all three).

References:
  A. Radford, L. Metz, S. Chintala, *Unsupervised representation learning with
  deep convolutional generative adversarial networks*, ICLR 2016,
  arXiv:1511.06434.
  W. Shi et al., *Real-time single image and video super-resolution using an
  efficient sub-pixel convolutional neural network*, CVPR 2016, arXiv:1609.05158.
  A. Odena, V. Dumoulin, C. Olah, *Deconvolution and checkerboard artifacts*,
  Distill 2016.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

UPSAMPLE = ("subpixel", "resize", "transpose")
GENERATOR_OUTPUTS = ("sigmoid", "bernoulli", "gaussian")
ENCODER_OUTPUTS = ("gaussian", "point")


def _leaky(x):
    return jax.nn.leaky_relu(x, 0.2)


def _image_shape(cls: str, image_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in image_shape)
    except TypeError:
        raise TypeError(
            f"{cls}: `image_shape` must be a tuple of ints, got {image_shape!r}"
        ) from None
    if len(shape) not in (2, 3) or min(shape) < 1 or shape[0] % 4 or shape[1] % 4:
        raise ValueError(
            f"{cls}: `image_shape` must be (H, W) or (H, W, C) with H and W "
            f"divisible by 4, e.g. (28, 28) or (28, 28, 3), got {image_shape!r}"
        )
    return shape


def _channels(shape) -> int:
    return shape[2] if len(shape) == 3 else 1


def _check_choice(cls: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{cls}: `{name}` must be one of {choices}, got {value!r}")


def _check_positive(cls: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{cls}: `{name}` must be an int >= 1, got {value!r}")
    return value


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
    """``(B, H, W, C r^2) -> (B, H r, W r, C)``, channel ``(i r + j) C + c`` to
    pixel offset ``(i, j)`` (the sub-pixel shuffle, TensorFlow's order).

    >>> depth_to_space(jnp.arange(4.0).reshape(1, 1, 1, 4))[0, ..., 0].tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    """
    b, h, w, c = x.shape
    x = x.reshape(b, h, w, block, block, c // block**2)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * block, w * block, -1)


class _Up(nnx.Module):
    """A 2x upsampling convolution in one of the :data:`UPSAMPLE` forms."""

    def __init__(self, c_in: int, c_out: int, mode: str, rngs: nnx.Rngs):
        self.mode = mode
        if mode == "subpixel":
            self.conv = nnx.Conv(c_in, 4 * c_out, (3, 3), rngs=rngs)
        elif mode == "resize":
            self.conv = nnx.Conv(c_in, c_out, (3, 3), rngs=rngs)
        else:
            self.conv = nnx.ConvTranspose(c_in, c_out, (4, 4), strides=2, rngs=rngs)

    def __call__(self, x):
        if self.mode == "subpixel":
            return depth_to_space(self.conv(x))
        if self.mode == "resize":
            x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return self.conv(x)


class _Trunk(nnx.Module):
    """Two 4x4 stride-2 convolutions with leaky ReLU, flattened."""

    def __init__(self, c_in: int, width: int, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(c_in, width, (4, 4), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, (4, 4), strides=2, rngs=rngs)

    def __call__(self, x):
        h = _leaky(self.conv2(_leaky(self.conv1(x))))
        return h.reshape(h.shape[0], -1)


def _check_images(cls: str, x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    if x.shape[1:] != shape:
        raise ValueError(
            f"{cls}: input must have shape (batch, *{shape}), got {x.shape}"
        )
    return x if len(shape) == 3 else x[..., None]


class DCGANGenerator(nnx.Module):
    r"""A DCGAN generator / convolutional decoder: ``z -> image``.

    ``Linear(z) -> (H/4, W/4, 2 width)`` -> ReLU -> 2x up to ``width`` channels ->
    ReLU -> 2x up to the image's channels (times 2 for ``"gaussian"``).

    Args:
      latent_dim: dimension of ``z``.
      image_shape: ``(H, W)`` or ``(H, W, C)``, H and W divisible by 4.
      rngs: ``nnx.Rngs`` for the initialisation.
      width: channels of the last hidden feature map (default 64; the first has
        ``2 * width``).
      output: ``"sigmoid"`` (pixels in (0, 1), a GAN generator; default),
        ``"bernoulli"`` (logits, a VAE decoder) or ``"gaussian"`` (``(mean,
        logvar)``).
      upsample: ``"subpixel"`` (default), ``"resize"`` or ``"transpose"``.

    Raises:
      ValueError: a bad shape, width, ``output`` or ``upsample``; at call time a
        ``z`` that is not ``(batch, latent_dim)``.
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        *,
        rngs: nnx.Rngs,
        width: int = 64,
        output: str = "sigmoid",
        upsample: str = "subpixel",
    ):
        cls = "DCGANGenerator"
        self.image_shape = _image_shape(cls, image_shape)
        self.latent_dim = _check_positive(cls, "latent_dim", latent_dim)
        width = _check_positive(cls, "width", width)
        _check_choice(cls, "output", output, GENERATOR_OUTPUTS)
        _check_choice(cls, "upsample", upsample, UPSAMPLE)
        self.output = output
        self.width = width
        h, w = self.image_shape[:2]
        c = _channels(self.image_shape) * (2 if output == "gaussian" else 1)
        self.head = nnx.Linear(latent_dim, (h // 4) * (w // 4) * 2 * width, rngs=rngs)
        self.up1 = _Up(2 * width, width, upsample, rngs)
        self.up2 = _Up(width, c, upsample, rngs)

    def __call__(self, z: jax.Array):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"DCGANGenerator: `z` must have shape (batch, {self.latent_dim}), "
                f"got {z.shape}"
            )
        h, w = self.image_shape[:2]
        f = jax.nn.relu(self.head(z)).reshape(z.shape[0], h // 4, w // 4, -1)
        out = self.up2(jax.nn.relu(self.up1(f)))
        shape = (z.shape[0], *self.image_shape)
        if self.output == "gaussian":
            mean, logvar = jnp.split(out, 2, axis=-1)
            return mean.reshape(shape), logvar.reshape(shape)
        out = out.reshape(shape)
        return jax.nn.sigmoid(out) if self.output == "sigmoid" else out


class DCGANEncoder(nnx.Module):
    r"""A convolutional encoder: image -> ``(mean, logvar)`` or one code.

    Two 4x4 stride-2 convolutions (``width``, ``2 width`` channels, leaky ReLU),
    then a linear head.

    Args:
      image_shape: ``(H, W)`` or ``(H, W, C)``, H and W divisible by 4.
      latent_dim: dimension of ``z``.
      rngs: ``nnx.Rngs`` for the initialisation.
      width: channels of the first convolution (default 64).
      output: ``"gaussian"`` (``(mean, logvar)`` of :math:`p(z|x)`, for
        :func:`genvi.vae_loss`; default) or ``"point"`` (one code per image, for
        :func:`genvi.ali_trainer` and :func:`genvi.aae_trainer`).

    Raises:
      ValueError: a bad shape, width or ``output``; at call time an input that
        is not ``(batch, *image_shape)``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        *,
        rngs: nnx.Rngs,
        width: int = 64,
        output: str = "gaussian",
    ):
        cls = "DCGANEncoder"
        self.image_shape = _image_shape(cls, image_shape)
        self.latent_dim = _check_positive(cls, "latent_dim", latent_dim)
        width = _check_positive(cls, "width", width)
        _check_choice(cls, "output", output, ENCODER_OUTPUTS)
        self.output = output
        self.trunk = _Trunk(_channels(self.image_shape), width, rngs)
        h, w = self.image_shape[:2]
        out = latent_dim * (2 if output == "gaussian" else 1)
        self.head = nnx.Linear((h // 4) * (w // 4) * 2 * width, out, rngs=rngs)

    def __call__(self, x: jax.Array):
        out = self.head(self.trunk(_check_images("DCGANEncoder", x, self.image_shape)))
        if self.output == "point":
            return out
        return out[:, : self.latent_dim], out[:, self.latent_dim :]


class DCGANDiscriminator(nnx.Module):
    r"""A DCGAN discriminator: image(s) (and a code) -> one logit of shape (B,).

    Inputs, for ``image_shape = (H, W, C)`` and ``n = H W C``:

    - images ``(B, *image_shape)`` (with ``pack_size = 1`` and no latent);
    - flat rows ``(B, pack_size * n + latent_dim)``: ``pack_size`` images
      (``genvi.pack``'s layout: consecutive samples, each flattened) and, when
      ``latent_dim > 0``, a code (ALI's ``[x, z]`` pairs). Packed images are
      stacked as channels (``pack_size * C`` input channels) and the code is
      joined to the convolutional features by a hidden linear layer.

    Args:
      image_shape: ``(H, W)`` or ``(H, W, C)``, H and W divisible by 4.
      rngs: ``nnx.Rngs`` for the initialisation.
      width: channels of the first convolution (default 64).
      pack_size: PacGAN degree (default 1).
      latent_dim: size of the code joined to the image (default 0: none).

    Raises:
      ValueError: a bad shape, width, ``pack_size`` or ``latent_dim``; at call
        time an input of another shape.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        *,
        rngs: nnx.Rngs,
        width: int = 64,
        pack_size: int = 1,
        latent_dim: int = 0,
    ):
        cls = "DCGANDiscriminator"
        self.image_shape = _image_shape(cls, image_shape)
        width = _check_positive(cls, "width", width)
        self.pack_size = _check_positive(cls, "pack_size", pack_size)
        if (
            isinstance(latent_dim, bool)
            or not isinstance(latent_dim, int)
            or latent_dim < 0
        ):
            raise ValueError(
                f"{cls}: `latent_dim` must be an int >= 0, got {latent_dim!r}"
            )
        self.latent_dim = latent_dim
        c = _channels(self.image_shape) * pack_size
        self.trunk = _Trunk(c, width, rngs)
        h, w = self.image_shape[:2]
        features = (h // 4) * (w // 4) * 2 * width
        if latent_dim:
            self.joint = nnx.Linear(features + latent_dim, 4 * width, rngs=rngs)
            features = 4 * width
        else:
            self.joint = None
        self.head = nnx.Linear(features, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h, w = self.image_shape[:2]
        c = _channels(self.image_shape)
        n = h * w * c
        flat = self.pack_size * n + self.latent_dim
        if x.shape[1:] == self.image_shape and flat == n:
            images, z = x.reshape(x.shape[0], h, w, c), None
        elif x.ndim == 2 and x.shape[1] == flat:
            m = self.pack_size
            images = x[:, : m * n].reshape(x.shape[0], m, h, w, c)
            images = images.transpose(0, 2, 3, 1, 4).reshape(x.shape[0], h, w, m * c)
            z = x[:, m * n :] if self.latent_dim else None
        else:
            raise ValueError(
                f"DCGANDiscriminator: input must have shape (batch, {flat}) (pack "
                f"{self.pack_size} x {n} pixels + latent {self.latent_dim})"
                + (f" or (batch, *{self.image_shape})" if flat == n else "")
                + f", got {x.shape}"
            )
        f = self.trunk(images)
        if self.joint is not None:
            f = _leaky(self.joint(jnp.concatenate([f, z], axis=1)))
        return self.head(f)[:, 0]
