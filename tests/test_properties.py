"""Property-based tests: random pytrees, hyperparameters and loss inputs.

For every dynopt optimiser, random pytrees (nested dicts, tuples, lists and
``None``; float16, bfloat16, float32, float64 and int leaves; shapes with zero
sizes) either give a clear error (integer leaves) or two steps whose results
keep every leaf's dtype and equal, bit for bit, the same steps on the flat
storage. Random hyperparameters inside their ranges build an optimiser; outside
them the error names the function and the argument. genvi's densities and
divergences on random shapes match NumPy / SciPy in float64, or name the
function in their error.
"""

import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dynopt
import genvi

settings.register_profile(
    "dynvi",
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("dynvi")

DTYPES = ["float16", "bfloat16", "float32", "float64", "int32"]
SHAPES = [(), (0,), (3,), (2, 0), (2, 3)]


@st.composite
def leaves(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from(SHAPES))
    values = draw(
        hnp.arrays(
            np.float64,
            shape,
            elements=st.floats(-2, 2, allow_nan=False, width=16),
        )
    )
    # A NumPy leaf: it becomes a jax array inside the test, under x64.
    return np.asarray(values, dtype=jnp.dtype(dtype))


def trees():
    return st.recursive(
        leaves(),
        lambda children: st.one_of(
            st.dictionaries(st.sampled_from("abcd"), children, max_size=3),
            st.lists(children, max_size=3),
            st.tuples(children, children),
            st.tuples(children, st.none()),
        ),
        max_leaves=5,
    )


OPTIMISERS = {
    "sgd": lambda: dynopt.sgd(0.1),
    "momentum": lambda: dynopt.momentum(0.1, 0.9),
    "nesterov": lambda: dynopt.nesterov(0.1, 0.9),
    "adam": lambda: dynopt.adam(0.01),
    "nag_c": lambda: dynopt.nag_c(0.01),
}


def _two_steps(tx, params):
    grads = jax.tree_util.tree_map(lambda p: (0.5 * p + 1).astype(p.dtype), params)
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def _bits(x):
    return np.asarray(x).reshape(-1).view(np.uint8)


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@settings(PROFILE, max_examples=6)  # 30 trees over the five optimisers
@given(params=trees())
def test_random_pytrees_tree_and_flat_paths(name, params):
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(jnp.asarray, params)
        flat_leaves = jax.tree_util.tree_leaves(params)
        tx = OPTIMISERS[name]()
        if any(not jnp.issubdtype(x.dtype, jnp.inexact) for x in flat_leaves):
            with pytest.raises(TypeError, match=rf"^dynopt.{name}: `params` leaf "):
                tx.init(params)
            return
        out = _two_steps(tx, params)
        assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(params)
        for a, b in zip(jax.tree_util.tree_leaves(out), flat_leaves):
            assert a.dtype == b.dtype and a.shape == b.shape
        if not flat_leaves:
            with pytest.raises(ValueError, match=r"^flatten: `params` must have"):
                dynopt.flatten(params)
            return
        flat = _two_steps(dynopt.flat_optimizer(tx), dynopt.flatten(params)).tree()
        for a, b in zip(
            jax.tree_util.tree_leaves(flat), jax.tree_util.tree_leaves(out)
        ):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(_bits(a), _bits(b))


NUMBERS = st.one_of(
    st.floats(-3, 3, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0, -1e-9]),
)

# name -> (factory, {argument: valid?})
RANGES = {
    "sgd": (
        lambda v: dynopt.sgd(v["learning_rate"]),
        {"learning_rate": lambda x: math.isfinite(x) and x >= 0},
    ),
    "momentum": (
        lambda v: dynopt.momentum(v["learning_rate"], v["beta"]),
        {
            "learning_rate": lambda x: math.isfinite(x) and x >= 0,
            "beta": lambda x: 0 <= x < 1,
        },
    ),
    "nesterov": (
        lambda v: dynopt.nesterov(v["learning_rate"], v["beta"]),
        {
            "learning_rate": lambda x: math.isfinite(x) and x >= 0,
            "beta": lambda x: 0 <= x < 1,
        },
    ),
    "adam": (
        lambda v: dynopt.adam(v["learning_rate"], b1=v["b1"], b2=v["b2"]),
        {
            "learning_rate": lambda x: math.isfinite(x) and x >= 0,
            "b1": lambda x: 0 <= x < 1,
            "b2": lambda x: 0 <= x < 1,
        },
    ),
    "nag_c": (
        lambda v: dynopt.nag_c(v["learning_rate"]),
        {"learning_rate": lambda x: math.isfinite(x) and x >= 0},
    ),
}


@pytest.mark.parametrize("name", sorted(RANGES))
@settings(PROFILE, max_examples=10)
@given(data=st.data())
def test_random_hyperparameters_build_or_name_the_argument(name, data):
    factory, valid = RANGES[name]
    values = {arg: data.draw(NUMBERS, label=arg) for arg in valid}
    bad = [arg for arg, ok in valid.items() if not ok(values[arg])]
    if not bad:
        tx = factory(values)
        out = _two_steps(tx, jnp.ones(3))
        assert out.dtype == jnp.float32
        return
    with pytest.raises((ValueError, TypeError), match=rf"^{name}: `({'|'.join(bad)})`"):
        factory(values)


SHAPE_PAIRS = st.tuples(
    st.sampled_from([(), (1,), (3,), (2, 3), (2, 1), (4,)]),
    st.sampled_from([(), (1,), (3,), (2, 3), (2, 1), (4,)]),
)


def _values(shape, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, shape)


def _broadcasts(*shapes):
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return False
    return True


@settings(PROFILE, max_examples=12)
@given(shapes=SHAPE_PAIRS, seed=st.integers(0, 2**16))
def test_gaussian_kl_and_log_prob_on_random_shapes(shapes, seed):
    a, b = _values(shapes[0], seed=seed), _values(shapes[1], seed=seed + 1)
    with jax.enable_x64(True):
        if not _broadcasts(*shapes):
            with pytest.raises(ValueError, match=r"^gaussian_kl: the shapes do not"):
                genvi.gaussian_kl(a, b)
            with pytest.raises(ValueError, match=r"^gaussian_log_prob: the shapes"):
                genvi.gaussian_log_prob(a, a, b)
            return
        kl = genvi.gaussian_kl(a, b, 0.3, -0.2)
        var_p, var_q = np.exp(b), np.exp(-0.2)
        expected = 0.5 * (np.log(var_q / var_p) + (var_p + (a - 0.3) ** 2) / var_q - 1)
        np.testing.assert_allclose(kl, expected, rtol=1e-12, atol=1e-12)
        assert np.all(np.asarray(kl) >= -1e-12)
        logp = genvi.gaussian_log_prob(a, 0.5, b)
        reference = scipy.stats.norm.logpdf(a, 0.5, np.sqrt(np.exp(b)))
        np.testing.assert_allclose(logp, reference, rtol=1e-12, atol=1e-12)


@settings(PROFILE, max_examples=12)
@given(shapes=SHAPE_PAIRS, seed=st.integers(0, 2**16))
def test_bernoulli_log_prob_on_random_shapes(shapes, seed):
    x = (_values(shapes[0], seed=seed) > 0).astype(np.float64)
    logits = _values(shapes[1], -5, 5, seed=seed + 1)
    with jax.enable_x64(True):
        if not _broadcasts(*shapes):
            with pytest.raises(ValueError, match=r"^bernoulli_log_prob: the shapes"):
                genvi.bernoulli_log_prob(x, logits)
            return
        out = genvi.bernoulli_log_prob(x, logits)
    p = scipy.special.expit(logits)
    np.testing.assert_allclose(out, scipy.stats.bernoulli.logpmf(x, p), rtol=1e-10)


@PROFILE
@given(
    shape=st.sampled_from([(0,), (1,), (5,), (3, 0), (0, 2), (3, 4)]),
    axis=st.integers(-3, 2),
    seed=st.integers(0, 2**16),
)
def test_log_mean_exp_on_random_shapes(shape, axis, seed):
    w = _values(shape, -30, 30, seed=seed)
    with jax.enable_x64(True):
        if not -len(shape) <= axis < len(shape):
            with pytest.raises(ValueError, match=r"^log_mean_exp: `axis`="):
                genvi.log_mean_exp(w, axis=axis)
            return
        if shape[axis] == 0:
            with pytest.raises(ValueError, match=r"^log_mean_exp: `log_weights` has"):
                genvi.log_mean_exp(w, axis=axis)
            return
        out = genvi.log_mean_exp(w, axis=axis)
    expected = scipy.special.logsumexp(w, axis=axis) - np.log(shape[axis])
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@settings(PROFILE, max_examples=10)
@given(
    value=st.one_of(
        st.none(),
        st.text(max_size=3),
        st.sampled_from([{"a": 1.0}, [1.0, "x"], object()]),
    )
)
def test_bad_values_name_the_loss_and_argument(value):
    for fn, call in [
        ("gaussian_kl", lambda: genvi.gaussian_kl(value, 0.0)),
        ("gaussian_log_prob", lambda: genvi.gaussian_log_prob(value, 0.0, 0.0)),
        ("bernoulli_log_prob", lambda: genvi.bernoulli_log_prob(value, 0.0)),
        ("log_mean_exp", lambda: genvi.log_mean_exp(value)),
    ]:
        with pytest.raises(TypeError, match=rf"^{fn}: `\w+` must be a number or an"):
            call()


LOGIT_SHAPES = st.sampled_from([(), (4,), (4, 1), (4, 2), (3,), (2, 2, 1), (0,)])


@pytest.mark.parametrize(
    "loss",
    [
        genvi.gan_discriminator_loss,
        genvi.aae_discriminator_loss,
        genvi.ali_discriminator_loss,
    ],
    ids=lambda f: f.__name__,
)
@settings(PROFILE, max_examples=10)
@given(shapes=st.tuples(LOGIT_SHAPES, LOGIT_SHAPES), seed=st.integers(0, 2**16))
def test_discriminator_losses_on_random_shapes(loss, shapes, seed):
    positive = _values(shapes[0], -20, 20, seed=seed)
    negative = _values(shapes[1], -20, 20, seed=seed + 1)

    def ok(shape):
        form = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
        return form and shape[0] > 0

    with jax.enable_x64(True):
        if not (ok(shapes[0]) and ok(shapes[1]) and shapes[0] == shapes[1]):
            with pytest.raises(ValueError, match=rf"^{loss.__name__}: `\w+` "):
                loss(positive, negative)
            return
        out = loss(positive, negative)
    # Binary cross-entropy, positives labelled 1: -log sigmoid(a) - log(1 - sigmoid(b)).
    expected = np.mean(np.logaddexp(0, -positive)) + np.mean(np.logaddexp(0, negative))
    np.testing.assert_allclose(out.loss, expected, rtol=1e-12)
