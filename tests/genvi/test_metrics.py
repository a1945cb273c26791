"""Metrics: Frechet closed forms, k-NN precision/recall, docs/reference.md G4."""

import numpy as np
import pytest
import scipy.linalg

import genvi
from genvi._src import metrics as metrics_src


def _spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_gaussian_frechet_closed_forms():
    rng = np.random.default_rng(0)
    # Commuting (diagonal) covariances: sum (sqrt(a) - sqrt(b))^2 + |m1 - m2|^2.
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = genvi.gaussian_frechet_distance(m1, np.diag(a), m2, np.diag(b))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # General covariances: the formula with scipy's matrix square root.
    c1, c2 = _spd(rng, 6), _spd(rng, 6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    expected = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * covmean)
    got = genvi.gaussian_frechet_distance(m1, c1, m2, c2)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert genvi.gaussian_frechet_distance(m1, c1, m1, c1) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_of_samples_uses_sample_moments():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4))
    y = rng.normal(size=(300, 4)) + 1.0
    expected = genvi.gaussian_frechet_distance(
        x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T)
    )
    assert genvi.frechet_distance(x, y) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"frechet_distance: feature widths differ"):
        genvi.frechet_distance(x, y[:, :3])
    with pytest.raises(ValueError, match=r"frechet_distance: features must have"):
        genvi.frechet_distance(x[0], y)
    with pytest.raises(ValueError, match=r"gaussian_frechet_distance: need means"):
        genvi.gaussian_frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


def _brute_force_pr(real, fake, k):
    """Direct transcription of the two papers' definitions, point by point."""

    def radius(points, i):
        d = sorted(np.linalg.norm(points - points[i], axis=1))
        return d[k]

    rr = [radius(real, i) for i in range(len(real))]
    rf = [radius(fake, j) for j in range(len(fake))]

    def dist(i, j):
        return np.linalg.norm(real[i] - fake[j])

    n, m = len(real), len(fake)
    precision = np.mean([any(dist(i, j) <= rr[i] for i in range(n)) for j in range(m)])
    recall = np.mean([any(dist(i, j) <= rf[j] for j in range(m)) for i in range(n)])
    density = sum(dist(i, j) <= rr[i] for i in range(n) for j in range(m)) / (k * m)
    coverage = np.mean([min(dist(i, j) for j in range(m)) < rr[i] for i in range(n)])
    return dict(precision=precision, recall=recall, density=density, coverage=coverage)


def test_precision_recall_matches_definitions():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(size=(30, 3)) * 1.5 + 0.5
    got = genvi.precision_recall(real, fake, k=3)
    expected = _brute_force_pr(real, fake, 3)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    with pytest.raises(ValueError, match=r"precision_recall: `k` must be >= 1"):
        genvi.precision_recall(real, fake, k=0)
    with pytest.raises(ValueError, match=r"precision_recall: features must have"):
        genvi.precision_recall(real, fake[:3], k=3)


def test_class_histogram_kl():
    assert genvi.class_histogram_kl(np.arange(100) % 10) == pytest.approx(0.0)
    assert genvi.class_histogram_kl(np.arange(100) % 5) == pytest.approx(np.log(2))
    assert genvi.class_histogram_kl(np.zeros(7, int)) == pytest.approx(np.log(10))
    with pytest.raises(ValueError, match=r"class_histogram_kl: `labels` must be"):
        genvi.class_histogram_kl(np.array([0, 10]))
    with pytest.raises(ValueError, match=r"got 0 labels"):
        genvi.class_histogram_kl(np.array([], int))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return genvi.digits_classifier(tmp_path_factory.mktemp("cache"))


def test_classifier_accuracy_and_cache(classifier, tmp_path, monkeypatch):
    # docs/reference.md G4: a small MLP reaches about 97.5% on the held-out half.
    assert classifier.test_accuracy >= 0.96
    a, b = genvi.digits_halves()
    assert np.mean(classifier.predict(b.x) == b.y) == classifier.test_accuracy
    assert classifier.features(b.x[:3]).shape == (3, 64)

    # Cached: a second call loads the file and never trains.
    first = genvi.digits_classifier(tmp_path, steps=20)
    monkeypatch.setattr(metrics_src, "_fit", _no_training)
    again = genvi.digits_classifier(tmp_path, steps=20)
    for (w1, b1), (w2, b2) in zip(first.params, again.params):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    # Another configuration is another file, so it must train.
    with pytest.raises(AssertionError, match="trained although cached"):
        genvi.digits_classifier(tmp_path, steps=21)
    # A corrupt file is ignored with a warning and rebuilt.
    (path,) = tmp_path.glob("digits_classifier_*")
    for part in path.rglob("*"):
        if part.is_file():
            part.write_bytes(b"garbage")
    monkeypatch.undo()
    with pytest.warns(RuntimeWarning, match=r"ignoring unreadable cache"):
        rebuilt = genvi.digits_classifier(tmp_path, steps=20)
    np.testing.assert_array_equal(rebuilt.params[0][0], first.params[0][0])
    with pytest.raises(ValueError, match=r"digits_classifier: `steps` must be >= 1"):
        genvi.digits_classifier(tmp_path, steps=0)
    with pytest.raises(ValueError, match=r"digits_classifier: `hidden` must be"):
        genvi.digits_classifier(tmp_path, hidden=())


def _no_training(*args, **kwargs):
    raise AssertionError("trained although cached")


def test_g4_calibration(classifier):
    """docs/reference.md G4 on the two stratified halves of the digits.

    Published: real vs real FID about 0.24, precision/recall about 0.97; five
    classes only: recall about 0.47, class-histogram KL ln 2.
    """
    a, b = genvi.digits_halves()
    real = genvi.digits_metrics(classifier, b.x, a.x)
    # FID scales with the feature variance (trace about 40 here): two halves of
    # one data set must sit within 1 (G4: 0.24), 1-2% of that variance.
    trace = np.trace(np.cov(classifier.features(a.x).T))
    assert real["fid"] < 1.0 and real["fid"] < 0.025 * trace
    assert real["precision"] > 0.9 and real["recall"] > 0.9
    assert real["coverage"] > 0.9
    assert real["class_kl"] < 0.01

    five = b.x[b.y < 5]
    half = genvi.digits_metrics(classifier, five, a.x)
    # Half the real manifold is missing: recall near 0.5 (G4: 0.47), while the
    # samples are still real digits, so precision stays high.
    assert 0.4 < half["recall"] < 0.6
    assert half["precision"] > 0.9
    assert half["fid"] > 10 * real["fid"]
    # True labels give ln 2 up to class imbalance; predicted labels lose a little
    # of it to the about 2.6% misclassified samples, which land in other classes.
    assert genvi.class_histogram_kl(b.y[b.y < 5]) == pytest.approx(np.log(2), abs=0.01)
    assert np.log(2) - 0.07 < half["class_kl"] <= np.log(2) + 0.01
