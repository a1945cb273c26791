"""Flax nnx networks for genvi's models."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import jax
from flax import nnx


class MLP(nnx.Module):
    """A multilayer perceptron: Linear -> act -> ... -> Linear.

    Args:
      sizes: layer widths including input and output, e.g. ``(2, 128, 128, 1)``.
      rngs: ``nnx.Rngs`` for the initialisation.
      activation: applied between layers (default ``jax.nn.relu``).
      final_activation: applied to the output (default none).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        rngs: nnx.Rngs,
        activation: Callable = jax.nn.relu,
        final_activation: Callable | None = None,
    ):
        sizes = _check_sizes("MLP", "sizes", sizes, allow_empty=False)
        if len(sizes) < 2:
            raise ValueError(f"MLP: `sizes` needs at least 2 entries, got {sizes!r}")
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
        )
        self.activation = activation
        self.final_activation = final_activation

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        x = self.layers[-1](x)
        if self.final_activation is not None:
            x = self.final_activation(x)
        return x


def _check_sizes(cls: str, name: str, sizes, allow_empty=True) -> tuple[int, ...]:
    """A sequence of layer widths, each an int >= 1 (an int alone is refused)."""
    if isinstance(sizes, int | str) or not hasattr(sizes, "__iter__"):
        raise TypeError(
            f"{cls}: `{name}` must be a sequence of ints (e.g. (128,) for one "
            f"hidden layer), got {sizes!r}"
        )
    sizes = tuple(sizes)
    if any(
        isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1
        for s in sizes
    ):
        raise ValueError(f"{cls}: `{name}` must hold ints >= 1, got {sizes!r}")
    return tuple(int(s) for s in sizes)


def _check_event_shape(cls: str, name: str, shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(
            f"{cls}: `{name}` must be a tuple of ints, got {shape!r}"
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(
            f"{cls}: `{name}` must be a non-empty tuple of positive ints, got {shape!r}"
        )
    return shape


def _check_likelihood(cls: str, likelihood) -> int:
    """Channels per output pixel: logits (1) or mean and logvar (2)."""
    if likelihood == "bernoulli":
        return 1
    if likelihood == "gaussian":
        return 2
    raise ValueError(
        f"{cls}: `likelihood` must be one of ('gaussian', 'bernoulli'), "
        f"got {likelihood!r}"
    )


def _check_input(cls: str, x: jax.Array, event_shape: tuple[int, ...]) -> None:
    if x.ndim != len(event_shape) + 1 or x.shape[1:] != event_shape:
        raise ValueError(
            f"{cls}: input must have shape (batch, *{event_shape}), got {x.shape}"
        )


def _split_output(out: jax.Array, likelihood: str):
    if likelihood == "bernoulli":
        return out[..., 0]
    return out[..., 0], out[..., 1]


class MLPEncoder(nnx.Module):
    r"""Gaussian encoder :math:`p(z|x) = \mathcal N(\mu(x), \operatorname{diag}
    e^{\log\sigma^2(x)})` from an MLP.

    ``x`` of shape ``(batch, *event_shape)`` is flattened, passed through the MLP
    and its ``2 * latent_dim`` outputs are split into ``(mean, logvar)``.

    Args:
      event_shape: shape of one example, e.g. ``(64,)`` or ``(8, 8)``.
      hidden_sizes: widths of the hidden layers, e.g. ``(256, 256)``.
      latent_dim: dimension of ``z``.
      rngs: ``nnx.Rngs`` for the initialisation.
      activation: between layers (default ``jax.nn.relu``).

    Raises:
      ValueError: a bad ``event_shape`` or ``latent_dim``; at call time an input
        whose shape is not ``(batch, *event_shape)``.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        hidden_sizes: Sequence[int],
        latent_dim: int,
        *,
        rngs: nnx.Rngs,
        activation: Callable = jax.nn.relu,
    ):
        self.event_shape = _check_event_shape("MLPEncoder", "event_shape", event_shape)
        hidden_sizes = _check_sizes("MLPEncoder", "hidden_sizes", hidden_sizes)
        if latent_dim < 1:
            raise ValueError(
                f"MLPEncoder: `latent_dim` must be >= 1, got {latent_dim!r}"
            )
        self.latent_dim = int(latent_dim)
        sizes = (math.prod(self.event_shape), *hidden_sizes, 2 * self.latent_dim)
        self.net = MLP(sizes, rngs=rngs, activation=activation)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        _check_input("MLPEncoder", x, self.event_shape)
        out = self.net(x.reshape(x.shape[0], -1))
        return out[:, : self.latent_dim], out[:, self.latent_dim :]


class MLPDecoder(nnx.Module):
    r"""Decoder :math:`q(x|z)` from an MLP: Bernoulli logits or Gaussian
    ``(mean, logvar)``, each of shape ``(batch, *event_shape)``.

    Args:
      latent_dim: dimension of ``z``.
      hidden_sizes: widths of the hidden layers.
      event_shape: shape of one example.
      likelihood: ``"bernoulli"`` (returns logits) or ``"gaussian"`` (returns
        ``(mean, logvar)``).
      rngs: ``nnx.Rngs`` for the initialisation.
      activation: between layers (default ``jax.nn.relu``).

    Raises:
      ValueError: unknown ``likelihood`` or bad shapes; at call time a ``z`` that
        is not ``(batch, latent_dim)``.
    """

    def __init__(
        self,
        latent_dim: int,
        hidden_sizes: Sequence[int],
        event_shape: Sequence[int],
        *,
        likelihood: str,
        rngs: nnx.Rngs,
        activation: Callable = jax.nn.relu,
    ):
        self.channels = _check_likelihood("MLPDecoder", likelihood)
        self.likelihood = likelihood
        self.event_shape = _check_event_shape("MLPDecoder", "event_shape", event_shape)
        hidden_sizes = _check_sizes("MLPDecoder", "hidden_sizes", hidden_sizes)
        if latent_dim < 1:
            raise ValueError(
                f"MLPDecoder: `latent_dim` must be >= 1, got {latent_dim!r}"
            )
        self.latent_dim = int(latent_dim)
        sizes = (
            self.latent_dim,
            *hidden_sizes,
            math.prod(self.event_shape) * self.channels,
        )
        self.net = MLP(sizes, rngs=rngs, activation=activation)

    def __call__(self, z: jax.Array):
        _check_input("MLPDecoder", z, (self.latent_dim,))
        out = self.net(z).reshape(z.shape[0], *self.event_shape, self.channels)
        return _split_output(out, self.likelihood)


def _check_image_shape(cls: str, image_shape) -> tuple[int, int]:
    shape = _check_event_shape(cls, "image_shape", image_shape)
    if len(shape) != 2 or shape[0] % 4 or shape[1] % 4:
        raise ValueError(
            f"{cls}: `image_shape` must be (H, W) with H and W divisible by 4 (two "
            f"stride-2 layers), e.g. (8, 8) or (28, 28), got {image_shape!r}"
        )
    return shape


class ConvEncoder(nnx.Module):
    r"""Convolutional Gaussian encoder for single-channel images.

    Images are shaped ``(batch, H, W)`` (no channel axis; a channel of one is added
    inside). Two 3x3 stride-2 convolutions (``H x W -> H/2 x W/2 -> H/4 x W/4``;
    8x8 -> 2x2, 28x28 -> 7x7), then a linear layer to ``(mean, logvar)``.

    Args:
      image_shape: ``(H, W)``, both divisible by 4, e.g. ``(8, 8)`` or ``(28, 28)``.
      latent_dim: dimension of ``z``.
      rngs: ``nnx.Rngs`` for the initialisation.
      channels: the two convolutions' output channels (default ``(32, 64)``).
      activation: after each convolution (default ``jax.nn.relu``).

    Raises:
      ValueError: a bad ``image_shape``; at call time an input that is not
        ``(batch, H, W)``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        *,
        rngs: nnx.Rngs,
        channels: tuple[int, int] = (32, 64),
        activation: Callable = jax.nn.relu,
    ):
        self.image_shape = _check_image_shape("ConvEncoder", image_shape)
        self.latent_dim = int(latent_dim)
        c1, c2 = channels
        self.conv1 = nnx.Conv(1, c1, (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(c1, c2, (3, 3), strides=2, rngs=rngs)
        h, w = self.image_shape
        self.head = nnx.Linear((h // 4) * (w // 4) * c2, 2 * self.latent_dim, rngs=rngs)
        self.activation = activation

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        _check_input("ConvEncoder", x, self.image_shape)
        h = self.activation(self.conv1(x[..., None]))
        h = self.activation(self.conv2(h))
        out = self.head(h.reshape(h.shape[0], -1))
        return out[:, : self.latent_dim], out[:, self.latent_dim :]


class ConvDecoder(nnx.Module):
    r"""Convolutional decoder for single-channel images, the mirror of
    :class:`ConvEncoder`.

    A linear layer to an ``H/4 x W/4`` feature map, then two 3x3 stride-2
    transposed convolutions back to ``H x W``. Returns logits of shape
    ``(batch, H, W)`` (``likelihood="bernoulli"``) or ``(mean, logvar)`` of that
    shape (``"gaussian"``).

    Args:
      latent_dim: dimension of ``z``.
      image_shape: ``(H, W)``, both divisible by 4.
      likelihood: ``"bernoulli"`` or ``"gaussian"``.
      rngs: ``nnx.Rngs`` for the initialisation.
      channels: channels of the feature map and of the first transposed
        convolution (default ``(64, 32)``).
      activation: between layers (default ``jax.nn.relu``).

    Raises:
      ValueError: unknown ``likelihood`` or a bad ``image_shape``; at call time a
        ``z`` that is not ``(batch, latent_dim)``.
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        *,
        likelihood: str,
        rngs: nnx.Rngs,
        channels: tuple[int, int] = (64, 32),
        activation: Callable = jax.nn.relu,
    ):
        self.out_channels = _check_likelihood("ConvDecoder", likelihood)
        self.likelihood = likelihood
        self.image_shape = _check_image_shape("ConvDecoder", image_shape)
        self.latent_dim = int(latent_dim)
        c1, c2 = channels
        self.channels = (c1, c2)
        h, w = self.image_shape
        self.head = nnx.Linear(self.latent_dim, (h // 4) * (w // 4) * c1, rngs=rngs)
        self.deconv1 = nnx.ConvTranspose(c1, c2, (3, 3), strides=2, rngs=rngs)
        self.deconv2 = nnx.ConvTranspose(
            c2, self.out_channels, (3, 3), strides=2, rngs=rngs
        )
        self.activation = activation

    def __call__(self, z: jax.Array):
        _check_input("ConvDecoder", z, (self.latent_dim,))
        h, w = self.image_shape
        f = self.activation(self.head(z))
        f = f.reshape(z.shape[0], h // 4, w // 4, self.channels[0])
        f = self.activation(self.deconv1(f))
        return _split_output(self.deconv2(f), self.likelihood)
