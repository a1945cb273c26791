"""Core terms of genvi against scipy, torch and Monte-Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

import genvi
from tests.tolerances import F32_ITERATES, F64_CLOSED_FORM, MC_SIGMAS


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_gaussian_log_prob_matches_scipy(x64):
    rng = _rng()
    x, mean = rng.normal(size=(2, 5, 3))
    logvar = rng.normal(size=(5, 3))
    got = genvi.gaussian_log_prob(x, mean, logvar)
    want = scipy.stats.norm.logpdf(x, mean, np.exp(0.5 * logvar))
    np.testing.assert_allclose(got, want, **F64_CLOSED_FORM)
    summed = genvi.gaussian_log_prob(x, mean, logvar, event_ndims=2)
    np.testing.assert_allclose(summed, want.sum(), **F64_CLOSED_FORM)
    mvn = scipy.stats.multivariate_normal(mean[0], np.diag(np.exp(logvar[0])))
    np.testing.assert_allclose(
        genvi.gaussian_log_prob(x[0], mean[0], logvar[0], event_ndims=1),
        mvn.logpdf(x[0]),
        **F64_CLOSED_FORM,
    )


def test_bernoulli_log_prob_matches_torch_and_scipy(x64):
    rng = _rng(1)
    logits = rng.normal(scale=3.0, size=(4, 6))
    x = (rng.uniform(size=(4, 6)) < 0.5).astype(np.float64)
    got = genvi.bernoulli_log_prob(x, logits)
    want_torch = torch.distributions.Bernoulli(logits=torch.tensor(logits)).log_prob(
        torch.tensor(x)
    )
    want_scipy = scipy.stats.bernoulli.logpmf(x, scipy.special.expit(logits))
    np.testing.assert_allclose(got, want_torch.numpy(), **F64_CLOSED_FORM)
    np.testing.assert_allclose(got, want_scipy, **F64_CLOSED_FORM)
    np.testing.assert_allclose(
        genvi.bernoulli_log_prob(x, logits, event_ndims=1),
        want_scipy.sum(axis=1),
        **F64_CLOSED_FORM,
    )


def test_bernoulli_log_prob_stable_for_huge_logits():
    # float32: sigmoid(+-200) rounds to 1 or 0, so log(sigmoid) would give -inf.
    logits = jnp.array([200.0, -200.0, 200.0, -200.0, 0.0])
    x = jnp.array([1.0, 0.0, 0.0, 1.0, 0.3])
    got = genvi.bernoulli_log_prob(x, logits)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(np.asarray(logits)),
        torch.tensor(np.asarray(x)),
        reduction="none",
    )
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, -want.numpy(), **F32_ITERATES)
    grad = jax.grad(lambda l: genvi.bernoulli_log_prob(x, l).sum())(logits)
    np.testing.assert_allclose(grad, x - jax.nn.sigmoid(logits), **F32_ITERATES)


def test_gaussian_kl_matches_torch(x64):
    rng = _rng(2)
    mp, lp, mq, lq = rng.normal(size=(4, 7))
    got = genvi.gaussian_kl(mp, lp, mq, lq)
    p = torch.distributions.Normal(torch.tensor(mp), torch.tensor(np.exp(lp / 2)))
    q = torch.distributions.Normal(torch.tensor(mq), torch.tensor(np.exp(lq / 2)))
    want = torch.distributions.kl_divergence(p, q).numpy()
    np.testing.assert_allclose(got, want, **F64_CLOSED_FORM)
    np.testing.assert_allclose(
        genvi.gaussian_kl(mp, lp, event_ndims=1),
        torch.distributions.kl_divergence(
            p, torch.distributions.Normal(0.0, 1.0)
        ).sum(),
        **F64_CLOSED_FORM,
    )


def test_gaussian_kl_matches_monte_carlo(x64):
    mp, lp = jnp.array([0.3, -1.0]), jnp.array([0.2, -0.5])
    mq, lq = jnp.array([-0.4, 0.5]), jnp.array([0.7, 0.1])
    z = genvi.reparameterize(jax.random.key(0), mp, lp, 200_000)
    log_ratio = genvi.gaussian_log_prob(
        z, mp, lp, event_ndims=1
    ) - genvi.gaussian_log_prob(z, mq, lq, event_ndims=1)
    exact = genvi.gaussian_kl(mp, lp, mq, lq, event_ndims=1)
    se = np.std(log_ratio) / np.sqrt(log_ratio.size)
    assert abs(np.mean(log_ratio) - exact) < MC_SIGMAS * se


def test_reparameterize_moments_shapes_and_gradient(x64):
    mean, logvar = jnp.array([1.0, -2.0]), jnp.array([0.0, np.log(0.25)])
    z = genvi.reparameterize(jax.random.key(1), mean, logvar, 100_000)
    assert z.shape == (100_000, 2)
    assert genvi.reparameterize(jax.random.key(1), mean, logvar).shape == (2,)
    n = z.shape[0]
    se_mean = np.exp(0.5 * logvar) / np.sqrt(n)
    assert np.all(np.abs(z.mean(0) - mean) < MC_SIGMAS * se_mean)
    # Var of the sample variance of a Gaussian: 2 sigma^4 / (n - 1).
    se_var = np.sqrt(2.0 / (n - 1)) * np.exp(logvar)
    assert np.all(np.abs(z.var(0) - np.exp(logvar)) < MC_SIGMAS * se_var)

    def first(mean, logvar):
        return genvi.reparameterize(jax.random.key(2), mean, logvar)[0]

    d_mean, d_logvar = jax.grad(first, argnums=(0, 1))(mean, logvar)
    eps = (first(mean, logvar) - mean[0]) / np.exp(0.5 * logvar[0])
    np.testing.assert_allclose(d_mean, [1.0, 0.0], **F64_CLOSED_FORM)
    np.testing.assert_allclose(
        d_logvar, [0.5 * np.exp(0.5 * logvar[0]) * eps, 0.0], **F64_CLOSED_FORM
    )


def test_log_mean_exp_matches_scipy(x64):
    log_w = _rng(3).normal(scale=30.0, size=(50, 4))
    want = scipy.special.logsumexp(log_w, axis=0) - np.log(50)
    np.testing.assert_allclose(genvi.log_mean_exp(log_w), want, **F64_CLOSED_FORM)
    np.testing.assert_allclose(
        genvi.log_mean_exp(log_w.T, axis=1), want, **F64_CLOSED_FORM
    )


def test_terms_are_jit_and_vmap_safe():
    rng = _rng(4)
    m, lv, x = (jnp.asarray(a, jnp.float32) for a in rng.normal(size=(3, 6, 5)))
    kl = jax.jit(jax.vmap(lambda m, lv: genvi.gaussian_kl(m, lv, event_ndims=1)))
    np.testing.assert_allclose(
        kl(m, lv), genvi.gaussian_kl(m, lv, event_ndims=1), **F32_ITERATES
    )
    lp = jax.jit(
        jax.vmap(lambda x, m, lv: genvi.gaussian_log_prob(x, m, lv, event_ndims=1))
    )
    np.testing.assert_allclose(
        lp(x, m, lv),
        genvi.gaussian_log_prob(x, m, lv, event_ndims=1),
        **F32_ITERATES,
    )
    keys = jax.random.split(jax.random.key(0), 6)
    z = jax.jit(jax.vmap(genvi.reparameterize))(keys, m, lv)
    assert z.shape == m.shape and z.dtype == jnp.float32


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: genvi.gaussian_log_prob(jnp.zeros(3), 0.0, 0.0, event_ndims=2),
            ValueError,
            r"gaussian_log_prob: `event_ndims` must satisfy 0 <= event_ndims <= "
            r"ndim = 1, got 2",
        ),
        (
            lambda: genvi.bernoulli_log_prob(jnp.zeros(3), 0.0, event_ndims=1.0),
            TypeError,
            r"bernoulli_log_prob: `event_ndims` must be an int, got float 1.0",
        ),
        (
            lambda: genvi.gaussian_kl(jnp.zeros(3), 0.0, event_ndims=-1),
            ValueError,
            r"gaussian_kl: `event_ndims` must satisfy .* got -1",
        ),
        (
            lambda: genvi.reparameterize(jax.random.key(0), 0.0, 0.0, 0),
            ValueError,
            r"reparameterize: `num_samples` must be >= 1, got 0",
        ),
        (
            lambda: genvi.reparameterize(jax.random.key(0), 0.0, 0.0, 2.0),
            TypeError,
            r"reparameterize: `num_samples` must be an int >= 1, got float 2.0",
        ),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()
