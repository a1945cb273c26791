"""Flax nnx networks for genvi's models."""

from __future__ import annotations

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
