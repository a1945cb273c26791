"""EM for Gaussian mixtures against scikit-learn and scipy."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import genvi
from tests.tolerances import F64_CLOSED_FORM, F64_MONOTONE


def _data(seed=0, n=300):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 1.0], [-1.0, 4.0]])
    x = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 2)) @ np.array(
        [[1.0, 0.3], [0.0, 0.7]]
    )
    return x


def _params(seed=1, k=3, d=2):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, k)
    a = rng.normal(size=(k, d, d))
    cov = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    return genvi.GMMParams(w / w.sum(), rng.normal(scale=2.0, size=(k, d)), cov)


def _sklearn(params, max_iter=1):
    gm = GaussianMixture(
        n_components=params.weights.shape[0],
        covariance_type="full",
        weights_init=np.asarray(params.weights),
        means_init=np.asarray(params.means),
        precisions_init=np.linalg.inv(np.asarray(params.covariances)),
        reg_covar=0.0,
        max_iter=max_iter,
        tol=0.0,
    )
    return gm


def test_log_likelihood_matches_sklearn_and_scipy(x64):
    x, params = _data(), _params()
    gm = _sklearn(params)
    # Set the fitted attributes directly so that score() uses exactly these params.
    gm.weights_ = np.asarray(params.weights)
    gm.means_ = np.asarray(params.means)
    gm.covariances_ = np.asarray(params.covariances)
    gm.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(gm.covariances_))
    per_example = genvi.gmm_log_prob(x, params)
    np.testing.assert_allclose(per_example, gm.score_samples(x), **F64_CLOSED_FORM)
    np.testing.assert_allclose(
        genvi.gmm_log_likelihood(x, params), gm.score(x), **F64_CLOSED_FORM
    )
    dens = sum(
        w * scipy.stats.multivariate_normal(m, c).pdf(x) for w, m, c in zip(*params)
    )
    np.testing.assert_allclose(per_example, np.log(dens), **F64_CLOSED_FORM)
    np.testing.assert_allclose(
        genvi.gmm_posterior(x, params), gm.predict_proba(x), **F64_CLOSED_FORM
    )


def test_em_iterations_match_sklearn(x64):
    x, params = _data(), _params()
    with warnings.catch_warnings():
        # max_iter=3 with tol=0 always "fails to converge": that is the point.
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = _sklearn(params, max_iter=3).fit(x)
    got, history = genvi.gmm_em(x, params, 3)
    np.testing.assert_allclose(got.weights, gm.weights_, **F64_CLOSED_FORM)
    np.testing.assert_allclose(got.means, gm.means_, **F64_CLOSED_FORM)
    np.testing.assert_allclose(got.covariances, gm.covariances_, **F64_CLOSED_FORM)
    # sklearn's lower bound is the mean log-likelihood at the last E-step.
    np.testing.assert_allclose(history[-2], gm.lower_bound_, **F64_CLOSED_FORM)
    np.testing.assert_allclose(
        history[-1], genvi.gmm_log_likelihood(x, got), **F64_CLOSED_FORM
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_em_log_likelihood_never_decreases(x64, seed):
    # Random data, random start: the joint-KL argument says EM never lowers it.
    rng = np.random.default_rng(seed)
    x = rng.standard_t(df=3, size=(200, 3))
    init = genvi.GMMParams(
        jnp.full(4, 0.25),
        jnp.asarray(x[rng.choice(200, 4, replace=False)]),
        jnp.stack([jnp.eye(3)] * 4),
    )
    params, history = genvi.gmm_em(x, init, 60)
    assert history.shape == (61,)
    assert np.all(np.diff(history) >= -F64_MONOTONE), np.diff(history).min()
    assert history[-1] > history[0] + 0.1
    np.testing.assert_allclose(params.weights.sum(), 1.0, **F64_CLOSED_FORM)


def test_m_step_is_the_stationary_point_of_the_joint_kl(x64):
    # With the responsibilities fixed, the M-step maximises
    # sum_n sum_z r_nz log(pi_z N(x_n; mu_z, Sigma_z)): its gradient in the means
    # and covariances vanishes there.
    x, params = jnp.asarray(_data()), _params()
    resp = genvi.gmm_posterior(x, params)
    new = genvi.gmm_m_step(x, resp)

    def objective(means, covariances):
        p = genvi.GMMParams(new.weights, means, covariances)
        log_joint = (
            jnp.log(genvi.gmm_posterior(x, p)) + genvi.gmm_log_prob(x, p)[:, None]
        )
        return jnp.sum(resp * log_joint)

    grad = jax.jit(jax.grad(objective, argnums=(0, 1)))
    g_means, g_cov = grad(new.means, new.covariances)
    np.testing.assert_allclose(g_means, 0.0, atol=1e-9)
    np.testing.assert_allclose(g_cov, 0.0, atol=1e-9)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda x, p: genvi.gmm_em(x, p, 0),
            ValueError,
            r"gmm_em: `num_iters` must be >= 1, got 0",
        ),
        (
            lambda x, p: genvi.gmm_em(x, p, 2.0),
            TypeError,
            r"gmm_em: `num_iters` must be an int >= 1, got float 2.0",
        ),
        (
            lambda x, p: genvi.gmm_em(x, p, 3, reg_covar=-1e-3),
            ValueError,
            r"gmm_em: `reg_covar` must be >= 0, got -0.001",
        ),
        (
            lambda x, p: genvi.gmm_em(x, tuple(p), 3),
            TypeError,
            r"gmm_em: `params` must be a GMMParams, got tuple",
        ),
        (
            lambda x, p: genvi.gmm_log_likelihood(x[:, :1], p),
            ValueError,
            r"gmm_log_likelihood: `params` must have weights \(K,\), means \(K, D\), "
            r"covariances \(K, D, D\) with D = 1 from x's shape \(300, 1\), got "
            r"weights \(3,\), means \(3, 2\), covariances \(3, 2, 2\)",
        ),
        (
            lambda x, p: genvi.gmm_posterior(x[0], p),
            ValueError,
            r"gmm_posterior: `x` must have shape \(N, D\), got shape \(2,\)",
        ),
        (
            lambda x, p: genvi.gmm_m_step(x, jnp.ones((5, 3))),
            ValueError,
            r"gmm_m_step: `x` must be \(N, D\) and `resp` \(N, K\), got shapes "
            r"\(300, 2\) and \(5, 3\)",
        ),
    ],
)
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call(jnp.asarray(_data(), jnp.float32), _params())
