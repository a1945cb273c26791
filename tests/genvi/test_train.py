"""The training loop: scan chunks, NaN policies, bit-exact resume, data parallelism."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import Mesh

import dynopt
import genvi
from tests.tolerances import F32_ITERATES


def _regression(seed=0, n=64):
    x = jax.random.normal(jax.random.key(seed), (n, 3))
    y = x @ jnp.array([[1.0], [-2.0], [0.5]]) + 0.1
    return x, y


def _loss_fn(model, key, data):
    xb, yb = genvi.sample_batch(key, data, 16)
    return jnp.mean((model(xb) - yb) ** 2)


def _setup(optimizer=None, seed=0):
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    model = genvi.MLP((3, 8, 1), rngs=nnx.Rngs(seed))
    graphdef, state = genvi.init_train_state(model, optimizer, jax.random.key(seed))
    return graphdef, state, genvi.gradient_step(_loss_fn, optimizer, graphdef)


def _leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb):
        if jnp.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_train_matches_python_loop_and_history():
    data = _regression()
    _, state, step = _setup(dynopt.momentum(0.05, 0.9))
    out, history = genvi.train(step, state, data=data, num_steps=23, steps_per_call=10)
    ref = state
    jstep = jax.jit(step)
    losses = []
    for _ in range(23):
        ref, m = jstep(ref, data)
        losses.append(float(m["loss"]))
    for u, v in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref)):
        if not jnp.issubdtype(u.dtype, jax.dtypes.prng_key):
            np.testing.assert_allclose(u, v, **F32_ITERATES)
    np.testing.assert_allclose(history["loss"], losses, **F32_ITERATES)
    np.testing.assert_array_equal(history["step"], np.arange(1, 24))
    assert not history["skipped"].any()
    assert set(history) == {"loss", "grad_norm", "step", "skipped"}
    assert int(out.step) == 23
    assert history["loss"][-1] < 0.2 * history["loss"][0]


def test_compiles_once_across_calls_and_chunk_lengths(tmp_path):
    traces = []

    def step(x):
        traces.append(1)  # runs only while jax traces the function
        return 0.5 * x, {"loss": x}

    x, _ = genvi.train(
        step,
        jnp.ones(2),
        num_steps=25,
        steps_per_call=10,
        checkpoint_dir=tmp_path,
        checkpoint_every=7,
    )
    # One trace for the argument check (eval_shape), one for the scan, although
    # the calls ran 7, 7, 7 and 4 steps.
    assert len(traces) == 2
    genvi.train(step, x, num_steps=5, steps_per_call=10)
    assert len(traces) == 3  # only the argument check again
    np.testing.assert_allclose(x, 0.5**25 * np.ones(2))


def test_changing_a_dynopt_learning_rate_does_not_recompile():
    traces = []
    optimizer = dynopt.sgd(0.05)
    model = genvi.MLP((3, 8, 1), rngs=nnx.Rngs(0))
    graphdef, state = genvi.init_train_state(model, optimizer, 0)

    def loss_fn(model, key, data):
        traces.append(1)
        return _loss_fn(model, key, data)

    step = genvi.gradient_step(loss_fn, optimizer, graphdef)
    data = _regression()
    state, _ = genvi.train(step, state, data=data, num_steps=10, steps_per_call=10)
    before = len(traces)
    slow = state._replace(
        opt_state=dynopt.set_hyperparams(state.opt_state, learning_rate=0.0)
    )
    frozen, _ = genvi.train(step, slow, data=data, num_steps=20, steps_per_call=10)
    assert len(traces) == before + 1  # the eval_shape check only, no new scan
    # The new rate is used: SGD with rate 0 leaves the parameters where they were.
    _leaves_equal(frozen.params, state.params)
    assert int(frozen.step) == 30


def test_unhashable_step_fn():
    class Step:
        __hash__ = None

        def __call__(self, x):
            return x + 1.0, {"x": x}

    x, history = genvi.train(Step(), jnp.zeros(()), num_steps=3, steps_per_call=2)
    assert float(x) == 3.0 and history["x"].tolist() == [0.0, 1.0, 2.0]


def test_merge_model_tuple_of_models():
    enc = genvi.MLP((3, 4, 2), rngs=nnx.Rngs(0))
    dec = genvi.MLP((2, 4, 3), rngs=nnx.Rngs(1))
    graphdef, state = genvi.init_train_state((enc, dec), optax.sgd(0.1), 0)
    enc2, dec2 = genvi.merge_model(graphdef, state)
    x = jnp.ones((5, 3))
    np.testing.assert_array_equal(dec2(enc2(x)), dec(enc(x)))


def test_resume_is_bit_exact(tmp_path):
    data = _regression()
    n = 30
    _, state, step = _setup()
    full, full_history = genvi.train(
        step, state, data=data, num_steps=2 * n, steps_per_call=7
    )
    ckpt = tmp_path / "ckpt"
    half, _ = genvi.train(
        step, state, data=data, num_steps=n, steps_per_call=7, checkpoint_dir=ckpt
    )
    assert genvi.latest_checkpoint(ckpt).name == f"ckpt_{n:08d}"
    # A fresh state only gives the structure; everything comes from the file.
    _, fresh, _ = _setup(seed=5)
    resumed, history = genvi.train(
        step,
        fresh,
        data=data,
        num_steps=2 * n,
        steps_per_call=7,
        checkpoint_dir=ckpt,
        resume=True,
    )
    _leaves_equal(resumed, full)
    for name in full_history:
        np.testing.assert_array_equal(history[name], full_history[name])


def test_checkpoint_every_and_keep(tmp_path):
    data = _regression()
    _, state, step = _setup()
    genvi.train(
        step,
        state,
        data=data,
        num_steps=25,
        steps_per_call=4,
        checkpoint_dir=tmp_path,
        checkpoint_every=10,
        keep_checkpoints=2,
    )
    names = [p.name for p in genvi.list_checkpoints(tmp_path)]
    assert names == ["ckpt_00000020", "ckpt_00000025"]
    restored, step_no, history = genvi.restore_checkpoint(
        tmp_path / "ckpt_00000020", state
    )
    assert step_no == 20 and int(restored.step) == 20
    np.testing.assert_array_equal(history["step"], np.arange(1, 21))


def _quadratic_step(bad_every=None, bad_at=None):
    """Gradient descent on |x|^2 / 2 with an injected NaN at chosen steps."""

    def step(state):
        x, key, k = state
        key, sub = jax.random.split(key)
        noise = 0.01 * jax.random.normal(sub, x.shape)
        new_x = x - 0.1 * x + noise
        bad = jnp.asarray(False)
        if bad_every is not None:
            bad = bad | (jax.random.uniform(sub) < 0.3)
        if bad_at is not None:
            bad = bad | (k + 1 == bad_at)
        new_x = jnp.where(bad, jnp.nan, new_x)
        return (new_x, key, k + 1), {"loss": 0.5 * jnp.sum(new_x**2)}

    return step


def _quadratic_state():
    return (jnp.ones(4), jax.random.key(3), jnp.asarray(0, jnp.int32))


def test_nan_skip_discards_and_counts():
    step = _quadratic_step(bad_every=True)
    state, history = genvi.train(
        step, _quadratic_state(), num_steps=40, steps_per_call=16, nan_policy="skip"
    )
    # Reference: the same rule by hand; a failed step keeps x, advances key and k.
    x, key, k = _quadratic_state()
    skipped = []
    for _ in range(40):
        (nx, key, k), _ = step((x, key, k))
        ok = bool(jnp.all(jnp.isfinite(nx)))
        skipped.append(not ok)
        x = nx if ok else x
    assert 3 < sum(skipped) < 37
    np.testing.assert_array_equal(history["skipped"], skipped)
    assert np.isnan(history["loss"][history["skipped"]]).all()
    assert np.isfinite(history["loss"][~history["skipped"]]).all()
    assert bool(jnp.all(jnp.isfinite(state[0])))
    np.testing.assert_allclose(state[0], x, **F32_ITERATES)
    assert int(state[2]) == 40


def test_nan_stop_keeps_last_good_state():
    step = _quadratic_step(bad_at=13)
    good, _ = genvi.train(step, _quadratic_state(), num_steps=12, steps_per_call=5)
    with pytest.warns(genvi.NonFiniteWarning, match="step 13 produced non-finite"):
        state, history = genvi.train(
            step, _quadratic_state(), num_steps=40, steps_per_call=5
        )
    _leaves_equal(state, good)
    assert int(history["stopped_at"]) == 13
    np.testing.assert_array_equal(history["step"], np.arange(1, 13))
    assert np.isfinite(history["loss"]).all()


def _hidden_nan_step(bad_at):
    """A step whose metrics stay finite while a state leaf turns NaN at ``bad_at``."""

    def step(state):
        x, aux, k = state
        aux = jnp.where(k + 1 == bad_at, jnp.nan, aux + 1.0)
        return (0.9 * x, aux, k + 1), {"loss": jnp.sum(x**2)}

    return step


def test_nan_in_state_only_is_found_at_its_step():
    # The metrics of every step are finite: the state alone shows the failure, at
    # step 7 of a chunk of 5 (the second chunk), for both policies.
    step, start = _hidden_nan_step(7), (jnp.ones(3), jnp.zeros(2), jnp.int32(0))
    good, _ = genvi.train(step, start, num_steps=6, steps_per_call=5)
    with pytest.warns(genvi.NonFiniteWarning, match="step 7 produced non-finite"):
        state, history = genvi.train(step, start, num_steps=20, steps_per_call=5)
    _leaves_equal(state, good)
    assert int(history["stopped_at"]) == 7
    with pytest.warns(genvi.NonFiniteWarning, match="skipped 1 of 12 steps"):
        state, history = genvi.train(
            step, start, num_steps=12, steps_per_call=5, nan_policy="skip"
        )
    assert np.flatnonzero(history["skipped"]).tolist() == [6]
    # The skipped step kept x and aux, advanced the counter.
    np.testing.assert_allclose(state[0], 0.9**11 * np.ones(3), rtol=1e-6)
    np.testing.assert_array_equal(state[1], np.full(2, 11.0))
    assert int(state[2]) == 12


def test_nan_raise():
    step = _quadratic_step(bad_at=3)
    with pytest.raises(FloatingPointError, match="train: step 3 produced non-finite"):
        genvi.train(step, _quadratic_state(), num_steps=10, nan_policy="raise")


def test_finite_run_does_not_warn():
    step = _quadratic_step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, history = genvi.train(step, _quadratic_state(), num_steps=5)
    assert "stopped_at" not in history


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_steps=-1), ValueError, r"train: `num_steps` must be an int >= 1"),
        (
            dict(num_steps=3, steps_per_call=0),
            ValueError,
            r"train: `steps_per_call` must be an int >= 1, got 0",
        ),
        (
            dict(num_steps=3, nan_policy="ignore"),
            ValueError,
            r"train: `nan_policy` must be one of .* got 'ignore'",
        ),
        (
            dict(num_steps=3, checkpoint_every=2),
            ValueError,
            r"train: `checkpoint_every` needs a `checkpoint_dir`",
        ),
        (
            dict(num_steps=3, checkpoint_dir="x", checkpoint_every=0),
            ValueError,
            r"train: `checkpoint_every` must be None or an int >= 1, got 0",
        ),
        (
            dict(num_steps=3, resume=True),
            ValueError,
            r"train: `resume=True` needs a `checkpoint_dir`",
        ),
        (
            dict(num_steps=3, mesh=Mesh(np.array(jax.devices()[:1]), ("batch",))),
            ValueError,
            r"train: `mesh` has no axis 'data'",
        ),
    ],
)
def test_train_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        genvi.train(_quadratic_step(), _quadratic_state(), **kwargs)


@pytest.mark.parametrize(
    "step, match",
    [
        (lambda s: s, r"train: `step_fn` must return a pair \(state, metrics\)"),
        (
            lambda s: ((s[0][:2], s[1], s[2]), {}),
            r"train: `step_fn` must return a state with the tree structure",
        ),
        (lambda s: (s, [1.0]), r"train: `step_fn` must return metrics as a dict"),
        (lambda s: (s, {"step": s[2]}), r"train: metric name 'step' is reserved"),
    ],
)
def test_train_step_fn_errors(step, match):
    with pytest.raises((TypeError, ValueError), match=match):
        genvi.train(step, _quadratic_state(), num_steps=2)


def test_sample_batch_errors_and_values():
    data = (jnp.arange(10.0), jnp.arange(10))
    xb, yb = genvi.sample_batch(jax.random.key(0), data, 6)
    assert xb.shape == (6,)
    np.testing.assert_array_equal(xb, yb.astype(xb.dtype))
    with pytest.raises(ValueError, match=r"sample_batch: `batch_size` must be an int"):
        genvi.sample_batch(jax.random.key(0), data, 0)
    with pytest.raises(ValueError, match=r"sample_batch: every leaf of `data`"):
        genvi.sample_batch(jax.random.key(0), (jnp.ones(3), jnp.ones(4)), 2)
    with pytest.raises(ValueError, match=r"sample_batch: `data` holds no arrays"):
        genvi.sample_batch(jax.random.key(0), (), 2)


def _need_devices(n):
    if len(jax.devices()) < n:
        pytest.skip(f"needs {n} host devices (XLA_FLAGS set before jax was imported)")


@pytest.fixture(scope="module")
def single_device_run():
    data = _regression()
    _, state, step = _setup()
    out, history = genvi.train(step, state, data=data, num_steps=20, steps_per_call=10)
    return data, state, step, out, history


@pytest.mark.parametrize("axis_type", ["auto", "explicit"])
def test_data_parallel_equals_single_device(axis_type, single_device_run):
    _need_devices(8)
    if axis_type == "auto":
        mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    else:
        mesh = jax.make_mesh(
            (8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,)
        )
    data, state, step, single, h1 = single_device_run
    multi, h8 = genvi.train(
        step, state, data=data, num_steps=20, steps_per_call=10, mesh=mesh
    )
    for u, v in zip(
        jax.tree_util.tree_leaves(multi), jax.tree_util.tree_leaves(single)
    ):
        if jnp.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), **F32_ITERATES)
    np.testing.assert_allclose(h8["loss"], h1["loss"], **F32_ITERATES)
    leaf = jax.tree_util.tree_leaves(multi.params)[0]
    assert len(leaf.sharding.device_set) == 8 and leaf.sharding.is_fully_replicated


def test_sample_batch_is_sharded_under_a_mesh():
    _need_devices(8)
    mesh = Mesh(np.array(jax.devices()[:8]), ("data",))
    data = jnp.arange(64.0).reshape(32, 2)
    with jax.set_mesh(mesh):
        batch = jax.jit(lambda k, d: genvi.sample_batch(k, d, 16))(
            jax.random.key(0), data
        )
        assert batch.sharding.spec[0] == "data"
        assert batch.addressable_shards[0].data.shape == (2, 2)
        with pytest.raises(ValueError, match=r"shard_batch: the batch dimension 12"):
            jax.jit(lambda k, d: genvi.sample_batch(k, d, 12))(jax.random.key(0), data)
