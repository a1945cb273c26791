r"""Variational inference on joint distributions: the core terms.

.. math::
    \mathrm{KL}(p(x,z)\,\|\,q(x,z)) = \mathrm{KL}(\tilde p(x)\,\|\,q(x))
      + \mathbb{E}_{\tilde p(x)} \mathrm{KL}(p(z|x)\,\|\,q(z|x))
      \ge \mathrm{KL}(\tilde p(x)\,\|\,q(x)),

with ``p`` the data/encoder side and ``q`` the model/generator side. Every loss of
genvi is a short composition of the terms in this package.

References:
  J. Su, *Variational inference: a unified framework of generative models and
  some revelations*, 2018, arXiv:1807.05936.
"""

from __future__ import annotations

from typing import NamedTuple

import jax


class LossOut(NamedTuple):
    """What every genvi loss returns.

    Attributes:
      loss: the scalar to minimise (mean over the batch).
      aux: a dict of named scalar terms (e.g. ``reconstruction``, ``kl``).
    """

    loss: jax.Array
    aux: dict
