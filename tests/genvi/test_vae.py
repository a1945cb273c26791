"""VAE and IWAE losses against the exact linear-Gaussian VAE, docs/reference.md G1."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

import genvi
from tests.tolerances import F64_CLOSED_FORM, MC_SIGMAS, REFERENCE_6DEC

# docs/reference.md G1: data N(0, S^2), encoder N(A x + B, SE^2), prior N(0, 1),
# decoder N(C z + D, SD^2).
S = 2.0
G1 = dict(a=0.3, b=0.1, se=0.5, c=1.5, d=0.2, sd=0.8)


# Compiled once per (encoder, decoder, K): eager dispatch of many small ops is slower.
_STATIC = ("encoder", "decoder", "likelihood", "num_samples")
iwae_bound = jax.jit(genvi.iwae_bound, static_argnames=_STATIC)
elbo_terms = jax.jit(genvi.elbo_terms, static_argnames=_STATIC)


def linear_encoder(a, b, se):
    return lambda x: (a * x + b, jnp.full_like(x, 2.0 * np.log(se)))


def linear_decoder(c, d, sd):
    return lambda z: (c * z + d, jnp.full_like(z, 2.0 * np.log(sd)))


def g1_model(a, b, se, c, d, sd):
    return linear_encoder(a, b, se), linear_decoder(c, d, sd)


def closed_forms(a, b, se, c, d, sd, s=S):
    """Every G1 quantity in closed form, with numpy only."""
    # Joint Gaussians over (x, z): p = data + encoder, q = prior + decoder.
    mean_p = np.array([0.0, b])
    cov_p = np.array([[s**2, a * s**2], [a * s**2, a**2 * s**2 + se**2]])
    mean_q = np.array([d, 0.0])
    cov_q = np.array([[c**2 + sd**2, c], [c, 1.0]])
    inv_q = np.linalg.inv(cov_q)
    dm = mean_q - mean_p
    joint = 0.5 * (
        np.trace(inv_q @ cov_p)
        + dm @ inv_q @ dm
        - 2.0
        + np.log(np.linalg.det(cov_q) / np.linalg.det(cov_p))
    )
    entropy = 0.5 * np.log(2 * np.pi * np.e * s**2)
    resid2 = (1 - c * a) ** 2 * s**2 + (c * b + d) ** 2 + c**2 * se**2
    reconstruction = 0.5 * np.log(2 * np.pi * sd**2) + resid2 / (2 * sd**2)
    kl = 0.5 * (a**2 * s**2 + b**2 + se**2 - np.log(se**2) - 1.0)
    var_x = c**2 + sd**2
    log_qx = -0.5 * np.log(2 * np.pi * var_x) - (s**2 + d**2) / (2 * var_x)
    marginal = -entropy - log_qx
    # Exact posterior q(z|x) = N(m(x), v) of the linear decoder.
    v = 1.0 / (1.0 + c**2 / sd**2)
    k = v * c / sd**2  # m(x) = k (x - d)
    gap2 = (a - k) ** 2 * s**2 + (b + k * d) ** 2
    conditional = 0.5 * (np.log(v / se**2) + (se**2 + gap2) / v - 1.0)
    return dict(
        joint=joint,
        entropy=entropy,
        reconstruction=reconstruction,
        kl=kl,
        negative_elbo=reconstruction + kl,
        marginal=marginal,
        conditional=conditional,
        log_qx=log_qx,
    )


def test_g1_closed_forms_match_reference():
    cf = closed_forms(**G1)
    reference = dict(
        joint=0.567325,
        marginal=0.036443,
        entropy=2.112086,
        reconstruction=2.176264,
        kl=0.503147,
        negative_elbo=2.679411,
        log_qx=-2.148529,
    )
    for name, value in reference.items():
        np.testing.assert_allclose(cf[name], value, err_msg=name, **REFERENCE_6DEC)
    # The paper's identity, each side computed independently.
    np.testing.assert_allclose(
        cf["joint"], cf["negative_elbo"] - cf["entropy"], **F64_CLOSED_FORM
    )
    np.testing.assert_allclose(
        cf["joint"], cf["marginal"] + cf["conditional"], **F64_CLOSED_FORM
    )


def _data(key, n):
    return S * jax.random.normal(key, (n, 1))


def test_g1_vae_loss_monte_carlo(x64):
    enc, dec = g1_model(**G1)
    cf = closed_forms(**G1)
    x = _data(jax.random.key(0), 200_000)
    key = jax.random.key(1)
    terms = elbo_terms(key, x, encoder=enc, decoder=dec, likelihood="gaussian")
    out = jax.jit(lambda k, x: genvi.vae_loss(k, x, enc, dec, likelihood="gaussian"))(
        key, x
    )
    per_example = {
        "negative_elbo": terms.reconstruction + terms.kl,
        "reconstruction": terms.reconstruction,
        "kl": terms.kl,
    }
    for name, values in per_example.items():
        se = np.std(values) / np.sqrt(values.size)
        got = out.loss if name == "negative_elbo" else out.aux[name]
        np.testing.assert_allclose(got, np.mean(values), **F64_CLOSED_FORM)
        assert abs(got - cf[name]) < MC_SIGMAS * se, (name, got, cf[name], se)
    # The joint KL estimate with the known data density.
    log_data = scipy.stats.norm.logpdf(np.asarray(x[:, 0]), 0.0, S)
    jk = genvi.joint_kl(key, x, enc, dec, likelihood="gaussian", data_log_prob=log_data)
    per_joint = terms.reconstruction + terms.kl + log_data
    se = np.std(per_joint) / np.sqrt(per_joint.size)
    assert abs(jk.joint_kl - cf["joint"]) < MC_SIGMAS * se
    np.testing.assert_allclose(
        jk.joint_kl, jk.negative_elbo - jk.data_entropy, **F64_CLOSED_FORM
    )


def test_num_samples_averages_reconstruction(x64):
    # K samples per example divide the variance of the reconstruction term by K.
    enc, dec = g1_model(**G1)
    cf = closed_forms(**G1)
    x = _data(jax.random.key(2), 20_000)
    out = genvi.vae_loss(
        jax.random.key(3), x, enc, dec, likelihood="gaussian", num_samples=8
    )
    terms = elbo_terms(
        jax.random.key(3),
        x,
        encoder=enc,
        decoder=dec,
        likelihood="gaussian",
        num_samples=8,
    )
    np.testing.assert_allclose(
        out.aux["reconstruction"], np.mean(terms.reconstruction), **F64_CLOSED_FORM
    )
    se = np.std(terms.reconstruction) / np.sqrt(x.shape[0])
    assert abs(out.aux["reconstruction"] - cf["reconstruction"]) < MC_SIGMAS * se
    # The KL term is analytic: no sampling noise beyond that of x.
    np.testing.assert_allclose(
        out.aux["kl"],
        np.mean(0.5 * ((0.3 * x + 0.1) ** 2 + 0.25 - np.log(0.25) - 1.0)),
        **F64_CLOSED_FORM,
    )


def _linear_params_to_model(p):
    enc = lambda x: (p["a"] * x + p["b"], jnp.broadcast_to(p["log_se2"], x.shape))  # noqa: E731
    dec = lambda z: (p["c"] * z + p["d"], jnp.broadcast_to(p["log_sd2"], z.shape))  # noqa: E731
    return enc, dec


def test_training_linear_vae_reaches_data_entropy(x64):
    params = dict(
        a=jnp.array(G1["a"]),
        b=jnp.array(G1["b"]),
        log_se2=jnp.array(2 * np.log(G1["se"])),
        c=jnp.array(G1["c"]),
        d=jnp.array(G1["d"]),
        log_sd2=jnp.array(2 * np.log(G1["sd"])),
    )
    steps = 3000
    schedule = optax.exponential_decay(3e-2, steps, 1e-3)
    opt = optax.adam(schedule)

    def loss(p, key):
        kx, kz = jax.random.split(key)
        enc, dec = _linear_params_to_model(p)
        return genvi.vae_loss(kz, _data(kx, 512), enc, dec, likelihood="gaussian").loss

    @jax.jit
    def train(params, key):
        def step(carry, key):
            p, s = carry
            g = jax.grad(loss)(p, key)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(
            step, (params, opt.init(params)), jax.random.split(key, steps)
        )
        return p

    p = {k: float(v) for k, v in train(params, jax.random.key(0)).items()}
    se2, sd2 = np.exp(p["log_se2"]), np.exp(p["log_sd2"])
    cf = closed_forms(p["a"], p["b"], np.sqrt(se2), p["c"], p["d"], np.sqrt(sd2))
    # The joint KL is quadratic near its minimum: the last Adam steps (lr 3e-5,
    # batch 512) leave parameter errors of a few 1e-3, hence an excess of order
    # 1e-5 over H(p~) (the exact minimum; the joint KL is >= 0).
    excess = cf["negative_elbo"] - 2.112086
    assert -REFERENCE_6DEC["atol"] <= excess < 1e-4, excess
    # G1 optimum: c^2 + sd^2 = s^2, a = c / s^2, se^2 = sd^2 / s^2, b = d = 0
    # (a curve of optima: c is free in [-s, s]).
    np.testing.assert_allclose(p["c"] ** 2 + sd2, S**2, atol=0.02)
    np.testing.assert_allclose(p["a"], p["c"] / S**2, atol=5e-3)
    np.testing.assert_allclose(se2, sd2 / S**2, atol=5e-3)
    np.testing.assert_allclose([p["b"], p["d"]], 0.0, atol=0.01)


def test_iwae_bound_rises_with_k_and_stays_below_log_likelihood(x64):
    enc, dec = g1_model(**G1)
    cf = closed_forms(**G1)
    x = _data(jax.random.key(4), 4000)
    var_x = G1["c"] ** 2 + G1["sd"] ** 2
    log_qx = scipy.stats.norm.logpdf(np.asarray(x[:, 0]), G1["d"], np.sqrt(var_x))
    n = x.shape[0]
    se_log_qx = np.std(log_qx) / np.sqrt(n)
    assert abs(np.mean(log_qx) - cf["log_qx"]) < MC_SIGMAS * se_log_qx
    previous, gaps = None, []
    for i, k in enumerate((1, 10, 100, 1000)):
        bound = np.asarray(
            genvi.iwae_bound(
                jax.random.key(10 + i),
                x,
                enc,
                dec,
                likelihood="gaussian",
                num_samples=k,
            )
        )
        gap = bound - log_qx  # <= 0 in expectation (Jensen)
        gaps.append(np.mean(gap))
        assert np.mean(gap) < MC_SIGMAS * np.std(gap) / np.sqrt(n), (k, gap.mean())
        if previous is None:
            # K = 1 is the ELBO: E[L_1] = -(negative ELBO).
            se = np.std(bound) / np.sqrt(n)
            assert abs(np.mean(bound) + cf["negative_elbo"]) < MC_SIGMAS * se
        else:
            # Paired on the same x: each tenfold K raises the bound by several
            # standard errors (0.42, 0.08, 0.018 nats against SEs 0.02, 0.008,
            # 0.003 here).
            rise = bound - previous
            assert np.mean(rise) > 3.0 * np.std(rise) / np.sqrt(n), (k, rise.mean())
        previous = bound
    # Approaches log q(x): the gap shrinks roughly tenfold per tenfold K.
    assert abs(gaps[-1]) < 0.01 < abs(gaps[0])


def _optimal_g1_model():
    # On the optimum curve (c = 1.2) the encoder is the exact posterior q(z|x).
    c = 1.2
    sd = np.sqrt(S**2 - c**2)
    return g1_model(a=c / S**2, b=0.0, se=sd / S, c=c, d=0.0, sd=sd)


def test_iwae_is_exact_with_the_exact_posterior(x64):
    # Every importance weight equals q(x), so every bound equals log q(x) exactly.
    enc, dec = _optimal_g1_model()
    x = _data(jax.random.key(5), 37)
    exact = scipy.stats.norm.logpdf(np.asarray(x[:, 0]), 0.0, S)
    for k in (1, 7):
        got = iwae_bound(
            jax.random.key(6),
            x,
            encoder=enc,
            decoder=dec,
            likelihood="gaussian",
            num_samples=k,
        )
        np.testing.assert_allclose(got, exact, **F64_CLOSED_FORM)
    # Chunks that do not divide N = 37 or K = 250: padding must be masked out.
    got = genvi.iwae_log_likelihood(
        jax.random.key(7),
        x,
        enc,
        dec,
        likelihood="gaussian",
        num_samples=250,
        batch_size=8,
        samples_per_chunk=64,
    )
    np.testing.assert_allclose(got, np.mean(exact), **F64_CLOSED_FORM)

    class Unhashable:  # cannot be a static argument of jit: the closure path
        __hash__ = None

        def __call__(self, x):
            return enc(x)

    got = genvi.iwae_log_likelihood(
        jax.random.key(7),
        x,
        Unhashable(),
        dec,
        likelihood="gaussian",
        num_samples=30,
        batch_size=16,
        samples_per_chunk=7,
    )
    np.testing.assert_allclose(got, np.mean(exact), **F64_CLOSED_FORM)


def test_iwae_log_likelihood_matches_the_bound_in_expectation(x64):
    enc, dec = g1_model(**G1)
    x = _data(jax.random.key(8), 300)
    chunked = genvi.iwae_log_likelihood(
        jax.random.key(9),
        x,
        enc,
        dec,
        likelihood="gaussian",
        num_samples=1000,
        batch_size=128,
        samples_per_chunk=300,
    )
    # Average several independent direct evaluations to estimate E[L_K] and its SE.
    direct = jax.vmap(
        lambda key: iwae_bound(
            key, x, encoder=enc, decoder=dec, likelihood="gaussian", num_samples=1000
        )
    )(jax.random.split(jax.random.key(20), 8))
    per_x = direct.mean(axis=0)
    spread = np.std(direct.mean(axis=1), ddof=1)  # SE of one mean over x
    assert abs(chunked - per_x.mean()) < MC_SIGMAS * spread * np.sqrt(1 + 1 / 8)


def test_vae_loss_with_bernoulli_likelihood(x64):
    # A decoder that ignores z: the reconstruction is the Bernoulli cross-entropy.
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(5, 3, 4)) < 0.4).astype(np.float64)
    logits = rng.normal(size=(3, 4))
    enc = lambda x: (jnp.zeros((x.shape[0], 2)), jnp.zeros((x.shape[0], 2)))  # noqa: E731
    dec = lambda z: jnp.broadcast_to(logits, (z.shape[0], 3, 4))  # noqa: E731
    out = genvi.vae_loss(
        jax.random.key(0), x, enc, dec, likelihood="bernoulli", num_samples=3
    )
    p = 1.0 / (1.0 + np.exp(-logits))
    want = -np.mean(np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=(1, 2)))
    np.testing.assert_allclose(out.aux["reconstruction"], want, **F64_CLOSED_FORM)
    np.testing.assert_allclose(out.aux["kl"], 0.0, **F64_CLOSED_FORM)


def _bad(**overrides):
    enc, dec = g1_model(**G1)
    args = dict(
        key=jax.random.key(0),
        x=jnp.ones((4, 1)),
        encoder=enc,
        decoder=dec,
        likelihood="gaussian",
    )
    args.update(overrides)
    return args


_G1_DEC = linear_decoder(G1["c"], G1["d"], G1["sd"])


@pytest.mark.parametrize("fn", [genvi.vae_loss, genvi.iwae_bound])
@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (
            dict(likelihood="poisson"),
            ValueError,
            r"`likelihood` must be one of \('gaussian', 'bernoulli'\), got 'poisson'",
        ),
        (dict(num_samples=0), ValueError, r"`num_samples` must be >= 1, got 0"),
        (dict(num_samples=-3), ValueError, r"`num_samples` must be >= 1, got -3"),
        (
            dict(num_samples=2.5),
            TypeError,
            r"`num_samples` must be an int >= 1, got float 2.5",
        ),
        (
            dict(decoder=lambda z: (jnp.ones((z.shape[0], 3)), 0.0)),
            ValueError,
            r"decoder output shape \(4, 3\) does not match x's shape \(4, 1\)",
        ),
        (
            dict(decoder=lambda z: _G1_DEC(z)[0]),
            TypeError,
            r"with likelihood='gaussian', `decoder\(z\)` must return a pair",
        ),
        (
            dict(decoder=_G1_DEC, likelihood="bernoulli"),
            TypeError,
            r"with likelihood='bernoulli', `decoder\(z\)` must return one array",
        ),
        (
            dict(encoder=lambda x: x),
            TypeError,
            r"`encoder\(x\)` must return a pair \(mean, logvar\)",
        ),
        (
            dict(encoder=lambda x: (x[:2], x[:2])),
            ValueError,
            r"encoder mean must have shape \(batch, \*latent_shape\) with batch = 4",
        ),
        (dict(x=jnp.float32(1.0)), ValueError, r"`x` must have a leading batch axis"),
    ],
)
def test_bad_inputs_raise(fn, overrides, error, match):
    args = _bad(**overrides)
    if fn is genvi.iwae_bound:
        args.setdefault("num_samples", 1)
    with pytest.raises(error, match=fn.__name__ + ": " + match):
        fn(**args)


def test_decoder_shape_message_names_the_sample_batch():
    args = _bad(num_samples=3, decoder=lambda z: (jnp.ones((4, 1)), 0.0))
    with pytest.raises(
        ValueError,
        match=r"vae_loss: decoder output shape \(4, 1\) does not match x's shape "
        r"\(4, 1\) \(for 3 sample\(s\) per example the decoder sees a batch of 12",
    ):
        genvi.vae_loss(**args)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (dict(batch_size=0), ValueError, r"`batch_size` must be >= 1, got 0"),
        (
            dict(samples_per_chunk=1.0),
            TypeError,
            r"`samples_per_chunk` must be an int >= 1, got float 1.0",
        ),
        (dict(num_samples=-1), ValueError, r"`num_samples` must be >= 1, got -1"),
        (dict(x=jnp.ones((0, 1))), ValueError, r"`x` must hold at least one example"),
        (dict(likelihood="normal"), ValueError, r"`likelihood` must be one of"),
    ],
)
def test_iwae_log_likelihood_bad_inputs_raise(overrides, error, match):
    with pytest.raises(error, match="iwae_log_likelihood: " + match):
        genvi.iwae_log_likelihood(**_bad(**overrides))


def test_joint_kl_checks_data_log_prob_shape():
    with pytest.raises(
        ValueError,
        match=r"joint_kl: `data_log_prob` must have shape \(batch,\) = \(4,\), got "
        r"\(4, 1\)",
    ):
        genvi.joint_kl(**_bad(data_log_prob=jnp.zeros((4, 1))))
