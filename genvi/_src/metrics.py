r"""Sample-quality metrics for digits: a small classifier and what is computed from it.

- :func:`digits_classifier`: an MLP (64 -> 64 ReLU -> 10) trained in JAX on one
  stratified half of scikit-learn's digits (about 97.4% accuracy on the other
  half), cached on disk by its training configuration.
- :func:`frechet_distance`: the Frechet distance between Gaussians fitted to two
  feature sets (FID with the classifier's hidden layer instead of Inception),

  .. math::
      d^2 = \|\mu_1 - \mu_2\|^2
        + \operatorname{tr}\big(\Sigma_1 + \Sigma_2
        - 2 (\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2}\big).

- :func:`precision_recall`: k-nearest-neighbour precision and recall
  (Kynkaanniemi et al.) and density and coverage (Naeem et al.).
- :func:`class_histogram_kl`: ``KL(h || uniform)`` of the predicted classes.

The statistics are computed in numpy float64 whatever ``jax_enable_x64`` says:
they subtract nearly equal traces (a real-vs-real FID is about 0.3 against a
feature variance of about 40), which float32 would swamp in rounding.

References:
  Heusel et al., *GANs Trained by a Two Time-Scale Update Rule Converge to a
  Local Nash Equilibrium*, NeurIPS 2017, arXiv:1706.08500.
  Kynkaanniemi et al., *Improved Precision and Recall Metric for Assessing
  Generative Models*, NeurIPS 2019, arXiv:1904.06991.
  Naeem et al., *Reliable Fidelity and Diversity Metrics for Generative Models*,
  ICML 2020, arXiv:2002.09797.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .checkpoint import CheckpointWarning, _short, restore_checkpoint, save_checkpoint
from .data import digits_halves
from .runs import read_run, write_run

_CACHE_VERSION = 2


class DigitsClassifier(NamedTuple):
    """A trained digits MLP.

    Attributes:
      params: tuple of ``(weight, bias)`` pairs, input layer first.
      test_accuracy: accuracy on the held-out half of the digits.
      config: the training configuration (the cache key).
    """

    params: tuple
    test_accuracy: float
    config: dict

    def features(self, x) -> np.ndarray:
        """Hidden-layer (post-ReLU) features of images ``x`` of shape (n, 64)."""
        return np.asarray(_features(self.params, jnp.asarray(x, jnp.float32)))

    def logits(self, x) -> np.ndarray:
        """Class logits of images ``x`` of shape (n, 64)."""
        return np.asarray(_logits(self.params, jnp.asarray(x, jnp.float32)))

    def predict(self, x) -> np.ndarray:
        """Predicted classes of images ``x`` of shape (n, 64)."""
        return self.logits(x).argmax(-1)


def _hidden(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    return x


def _head(params, x):
    w, b = params[-1]
    return _hidden(params, x) @ w + b


_features = jax.jit(_hidden)
_logits = jax.jit(_head)


def _init(key, sizes):
    params = []
    for k, (m, n) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])):
        # He initialisation for ReLU layers.
        params.append((jax.random.normal(k, (m, n)) * np.sqrt(2.0 / m), jnp.zeros(n)))
    return tuple(params)


def _fit(config, x, y):
    """Full-batch AdamW on the cross-entropy, all steps in one jitted scan."""
    sizes = (x.shape[1], *config["hidden"], 10)
    params = _init(jax.random.key(config["seed"]), sizes)
    opt = optax.adamw(config["learning_rate"], weight_decay=config["weight_decay"])

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(_head(p, x), y).mean()

    @jax.jit
    def fit(params):
        def body(carry, _):
            p, s = carry
            updates, s = opt.update(jax.grad(loss)(p), s, p)
            return (optax.apply_updates(p, updates), s), None

        return jax.lax.scan(body, (params, opt.init(params)), None, config["steps"])[0]

    return fit(params)[0]


def default_cache_dir() -> Path:
    """``$DYNVI_CACHE`` if set, else ``~/.cache/dynvi``."""
    return Path(os.environ.get("DYNVI_CACHE", Path.home() / ".cache" / "dynvi"))


def digits_classifier(
    cache_dir: str | os.PathLike | None = None,
    *,
    hidden: tuple[int, ...] = (64,),
    steps: int = 500,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> DigitsClassifier:
    """The digits classifier, loaded from the cache or trained (seconds) and cached.

    Trained on the first half of :func:`genvi.digits_halves` and evaluated on the
    second. The cache file name is a hash of every argument but ``cache_dir``
    (and a format version), so a different configuration never loads a stale
    file; an unreadable or inconsistent file is retrained and replaced.

    Args:
      cache_dir: folder of the cache (default: :func:`default_cache_dir`).
      hidden: hidden-layer widths (default (64,)); features are the last one.
      steps: full-batch AdamW steps (default 500).
      learning_rate: AdamW learning rate (default 3e-3).
      weight_decay: AdamW weight decay (default 1e-4).
      seed: initialisation seed (default 0).

    Returns:
      A :class:`DigitsClassifier`.

    Raises:
      ValueError: if ``hidden`` is empty or has a width < 1, or ``steps`` < 1.
    """
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(
            f"digits_classifier: `hidden` must be non-empty widths >= 1, got {hidden!r}"
        )
    if int(steps) < 1:
        raise ValueError(f"digits_classifier: `steps` must be >= 1, got {steps!r}")
    config = {
        "version": _CACHE_VERSION,
        "hidden": list(hidden),
        "steps": int(steps),
        "learning_rate": float(learning_rate),
        "weight_decay": float(weight_decay),
        "seed": int(seed),
        "split": "digits_halves(seed=0)",
    }
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"digits_classifier_{digest[:16]}"
    sizes = (64, *hidden, 10)
    shapes = [((m, n), (n,)) for m, n in zip(sizes, sizes[1:])]
    loaded = _load(path, shapes, config, "digits_classifier")
    if loaded is not None:
        return DigitsClassifier(*loaded)
    train, test = digits_halves()
    params = _fit(config, jnp.asarray(train.x), jnp.asarray(train.y))
    hits = np.asarray(_logits(params, test.x)).argmax(-1) == test.y
    _save(path, params, (int(hits.sum()), len(hits)), config)
    return DigitsClassifier(jax.device_get(params), float(np.mean(hits)), config)


def _load(path: Path, shapes, config, name: str):
    """``(params, accuracy, config)`` of a cached classifier, or None.

    ``shapes`` lists the expected ``(weight_shape, bias_shape)`` of each layer;
    the restore checks the stored structure and shapes against them.
    """
    if not path.exists():
        return None
    like = {
        "params": tuple(
            (np.zeros(tuple(ws), np.float32), np.zeros(tuple(bs), np.float32))
            for ws, bs in shapes
        ),
        "test_hits": np.zeros(2, np.int32),
    }
    try:
        stored = read_run(path)
        if stored is None or stored.get("config") != config:
            raise ValueError("its configuration is missing or differs")
        with warnings.catch_warnings():
            warnings.simplefilter("error", CheckpointWarning)
            restored, _, _ = restore_checkpoint(path, like)
        params = tuple((np.asarray(w), np.asarray(b)) for w, b in restored["params"])
        if not all(np.isfinite(a).all() for pair in params for a in pair):
            raise ValueError("it holds non-finite parameters")
    except (OSError, ValueError, CheckpointWarning) as e:
        warnings.warn(
            f"{name}: ignoring unreadable cache {str(path)!r} "
            f"({_short(e)}); retraining",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    hits, total = (int(v) for v in restored["test_hits"])
    return params, float(np.float64(hits) / total), config


def _save(path: Path, params, hits, config):
    """Writes a classifier cache; ``hits`` is ``(correct, total)`` on its test set."""
    # The same writer as training checkpoints: an atomic commit, so a reader
    # never sees half a cache; a stale or corrupt cache is replaced.
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    state = {
        "params": tuple((np.asarray(w), np.asarray(b)) for w, b in params),
        "test_hits": np.asarray(hits, np.int32),
    }
    save_checkpoint(path, state, 0, keep=1)
    write_run(path, config)


def _as_features(name, x, min_rows=2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < min_rows:
        raise ValueError(
            f"{name}: features must have shape (n, d) with n >= {min_rows}, got "
            f"{x.shape}"
        )
    return x


def _sqrt_psd(c):
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def gaussian_frechet_distance(mean1, cov1, mean2, cov2) -> float:
    r"""Squared Frechet (2-Wasserstein) distance between two Gaussians.

    .. math::
        \|\mu_1-\mu_2\|^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
        - 2 \operatorname{tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2},

    the last trace from the eigenvalues of the symmetric PSD matrix
    ``S1^{1/2} S2 S1^{1/2}`` (equal to ``tr sqrtm(S1 S2)``, without the complex
    round-off of a general matrix square root).

    >>> import numpy as np
    >>> gaussian_frechet_distance(np.zeros(2), 4 * np.eye(2), np.ones(2), np.eye(2))
    4.0

    Raises:
      ValueError: if the shapes are not ``(d,)``, ``(d, d)`` for both.
    """
    m1, m2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    c1, c2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = m1.shape[0] if m1.ndim == 1 else -1
    if (
        m1.shape != (d,)
        or m2.shape != (d,)
        or c1.shape != (d, d)
        or c2.shape
        != (
            d,
            d,
        )
    ):
        raise ValueError(
            "gaussian_frechet_distance: need means of shape (d,) and covariances of "
            f"shape (d, d); got {m1.shape}, {c1.shape}, {m2.shape}, {c2.shape}"
        )
    s1 = _sqrt_psd(c1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(s1 @ c2 @ s1), 0, None)).sum()
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * cross)


def frechet_distance(features1, features2) -> float:
    """The Frechet distance of Gaussians fitted to two feature sets (FID).

    Means and unbiased covariances (``np.cov``) of each set, then
    :func:`gaussian_frechet_distance`.

    Raises:
      ValueError: if a set is not 2-D with at least 2 rows, or the widths differ.
    """
    a = _as_features("frechet_distance", features1)
    b = _as_features("frechet_distance", features2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"frechet_distance: feature widths differ, got {a.shape} and {b.shape}"
        )
    return gaussian_frechet_distance(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )


def _distances(a, b, block=1024):
    """Euclidean distances, in row blocks to bound the memory of the Gram terms."""
    out = np.empty((len(a), len(b)))
    bb = np.sum(b**2, 1)
    for i in range(0, len(a), block):
        x = a[i : i + block]
        sq = np.sum(x**2, 1)[:, None] + bb[None, :] - 2 * x @ b.T
        out[i : i + block] = np.sqrt(np.clip(sq, 0, None))
    return out


def _kth_radius(x, k):
    d = _distances(x, x)
    # Column 0 after partition is the point itself (distance 0).
    return np.partition(d, k, axis=1)[:, k]


def precision_recall(real, fake, *, k: int = 5) -> dict:
    r"""k-NN precision, recall, density and coverage of ``fake`` against ``real``.

    With ``r_k(x)`` the distance from ``x`` to its k-th nearest neighbour in its
    own set and ``B(x, r)`` the closed ball:

    - precision: share of fake points in some ``B(x, r_k(x))``, x real;
    - recall: share of real points in some ``B(y, r_k(y))``, y fake;
    - density: :math:`\frac{1}{kM}\sum_j \sum_i 1[y_j \in B(x_i, r_k(x_i))]`;
    - coverage: share of real points whose ball ``B(x, r_k(x))`` holds a fake
      point (its nearest fake is closer than ``r_k(x)``).

    Args:
      real: features of real examples, shape (n, d).
      fake: features of generated examples, shape (m, d).
      k: the neighbour rank (default 5, Naeem et al.'s choice; Kynkaanniemi et
        al. use 3).

    Returns:
      dict with ``precision``, ``recall``, ``density``, ``coverage`` (floats).

    Raises:
      ValueError: if ``k`` < 1, a set has at most ``k`` rows, or widths differ.
    """
    if int(k) < 1:
        raise ValueError(f"precision_recall: `k` must be >= 1, got {k!r}")
    real = _as_features("precision_recall", real, min_rows=k + 1)
    fake = _as_features("precision_recall", fake, min_rows=k + 1)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"precision_recall: feature widths differ, got {real.shape} and "
            f"{fake.shape}"
        )
    r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
    d = _distances(real, fake)
    inside_real = d <= r_real[:, None]
    return {
        "precision": float(inside_real.any(0).mean()),
        "recall": float((d <= r_fake[None, :]).any(1).mean()),
        "density": float(inside_real.sum() / (k * len(fake))),
        "coverage": float((d.min(1) < r_real).mean()),
    }


def class_histogram_kl(labels, num_classes: int = 10) -> float:
    r"""``KL(h || uniform)`` of the class histogram ``h`` of predicted labels.

    .. math:: \sum_c h_c \log(C h_c), \qquad 0 \le \cdot \le \log C,

    zero for balanced classes, ``log 2`` when half the classes are missing and
    the rest balanced, ``log C`` for a single class (mode collapse).

    >>> round(class_histogram_kl([0, 1, 2, 3, 4] * 20), 4)  # ln 2
    0.6931

    Raises:
      ValueError: if ``labels`` is empty or outside ``0..num_classes-1``.
    """
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            "class_histogram_kl: `labels` must be non-empty integers in "
            f"[0, {num_classes}), got {labels.size} labels"
            + (f" in [{labels.min()}, {labels.max()}]" if labels.size else "")
        )
    h = np.bincount(labels, minlength=num_classes) / labels.size
    h = h[h > 0]
    return float(np.sum(h * np.log(num_classes * h)))


def digits_metrics(classifier: DigitsClassifier, samples, real, *, k: int = 5) -> dict:
    """All sample metrics of images ``samples`` against real images ``real``.

    Args:
      classifier: from :func:`digits_classifier`.
      samples: generated images, shape (m, 64), values in [0, 1].
      real: real images, shape (n, 64).
      k: neighbour rank of :func:`precision_recall` (default 5).

    Returns:
      dict with ``fid``, ``precision``, ``recall``, ``density``, ``coverage``,
      ``class_kl`` (of the samples' predicted classes) and ``real_class_kl``.
    """
    fs, fr = classifier.features(samples), classifier.features(real)
    out = {"fid": frechet_distance(fr, fs)}
    out.update(precision_recall(fr, fs, k=k))
    out["class_kl"] = class_histogram_kl(classifier.predict(samples))
    out["real_class_kl"] = class_histogram_kl(classifier.predict(real))
    return out
