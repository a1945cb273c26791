"""optax's own generic optimiser tests, run on dynopt's factories.

The test bodies are optax's (``optax/_src/alias_test.py::AliasTest`` and
``optax/schedules/_schedule_test.py::ScheduleAsLearningRateTest``), imported
from the installed optax and called with dynopt's factories substituted for
optax's: ``_get_opt`` (``AliasTest``) and ``alias`` (the schedule test) are
the only names they use to build an optimiser, and they are patched for the
call. absl's ``parameterized`` keeps each undecorated test as ``__wrapped__``
of its generated methods, so the cases below choose their own parameters
(dynopt's factories and hyperparameters) and run the unchanged bodies.

What cannot be reused is reproduced below, citing the optax test it follows.
"""

import functools
import inspect
import types
import typing

import jax
import jax.numpy as jnp
import optax
import pytest

import dynopt

# optax's wheels ship their test modules; without them there is nothing to reuse
alias_test = pytest.importorskip(
    "optax._src.alias_test", reason="this optax does not ship its test modules"
)
test_utils = pytest.importorskip("optax._src.test_utils")
_schedule_test = pytest.importorskip(
    "optax.schedules._schedule_test",
    reason="this optax does not ship its test modules",
)

# optax's AliasTest parameters for the same method where it has one
# ({'opt_name': 'sgd', 'opt_kwargs': {'learning_rate': 1e-3, 'momentum': 0.9}},
# {'opt_name': 'adam', 'opt_kwargs': {'learning_rate': 1e-1}}).
FACTORIES = {
    "sgd": (dynopt.sgd, {"learning_rate": 1e-3}),
    "momentum": (dynopt.momentum, {"learning_rate": 1e-3, "beta": 0.9}),
    "nesterov": (dynopt.nesterov, {"learning_rate": 1e-3, "beta": 0.9}),
    "adam": (dynopt.adam, {"learning_rate": 1e-1}),
}
NAMES = list(FACTORIES)
# The suite's time is budgeted: these per-dtype tests run on the two code paths
# (leapfrog buffers, Adam's moments); sgd and nesterov share the first and run
# every other test here.
DTYPE_CASES = {
    "preserve": [("nesterov", "bfloat16"), ("adam", "bfloat16")],
    "accumulation": [("momentum", "bfloat16"), ("adam", "float32")],
    "stability": [("momentum", jnp.float64), ("adam", jnp.float16)],
}


def _body(cls, name):
    """The undecorated optax test ``name`` of ``cls`` and a case to run it on."""
    generated = next(n for n in dir(cls) if n.startswith(name))
    return getattr(cls, generated).__wrapped__, cls(generated)


def _run_alias_test(monkeypatch, test, **kwargs):
    """Runs ``AliasTest.<test>`` with ``_get_opt`` returning dynopt's factory."""
    body, case = _body(alias_test.AliasTest, test)

    def get_opt(self, opt_name):
        del self
        return FACTORIES[opt_name][0]

    monkeypatch.setattr(alias_test, "_get_opt", get_opt)
    body(case, **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_optimizers_can_be_wrapped_in_inject_hyperparams(monkeypatch, name):
    """optax: AliasTest.test_optimizers_can_be_wrapped_in_inject_hyperparams
    (equal updates, and the inner state equal to the plain optimiser's)."""
    _run_alias_test(
        monkeypatch,
        "test_optimizers_can_be_wrapped_in_inject_hyperparams",
        opt_name=name,
        opt_kwargs=FACTORIES[name][1],
    )


@pytest.mark.parametrize("name", NAMES)
def test_optimizers_accept_extra_args(monkeypatch, name):
    """optax: AliasTest.test_optimizers_accept_extra_args."""
    _run_alias_test(
        monkeypatch,
        "test_optimizers_accept_extra_args",
        opt_name=name,
        opt_kwargs=FACTORIES[name][1],
    )


@pytest.mark.parametrize("name, dtype", DTYPE_CASES["preserve"])
def test_preserve_dtype(monkeypatch, name, dtype):
    """optax: AliasTest.test_preserve_dtype."""
    _run_alias_test(
        monkeypatch,
        "test_preserve_dtype",
        opt_name=name,
        opt_kwargs=FACTORIES[name][1],
        dtype=dtype,
    )


@pytest.mark.parametrize("name, dtype", DTYPE_CASES["accumulation"])
def test_gradient_accumulation(monkeypatch, name, dtype):
    """optax: AliasTest.test_gradient_accumulation (MultiSteps)."""
    _run_alias_test(
        monkeypatch,
        "test_gradient_accumulation",
        opt_name=name,
        opt_kwargs=FACTORIES[name][1],
        dtype=dtype,
    )


@pytest.mark.parametrize("name, dtype", DTYPE_CASES["stability"])
def test_state_shape_dtype_shard_stability(monkeypatch, name, dtype):
    """optax: AliasTest.test_state_shape_dtype_shard_stability (real dtypes; it
    switches x64 on itself for float64)."""
    _run_alias_test(
        monkeypatch,
        "test_state_shape_dtype_shard_stability",
        opt_name=name,
        opt_kwargs=FACTORIES[name][1],
        dtype=dtype,
    )


# Rates for optax's 10,000-step optimisation test where dynopt's optimiser has
# no optax counterpart in the list: plain gradient descent reaches the
# Rosenbrock minimum in 10,000 steps only near its stability limit 2 / 1002.
OPTIMIZATION = {**FACTORIES, "sgd": (dynopt.sgd, {"learning_rate": 1.9e-3})}


@pytest.mark.parametrize("name", NAMES)
def test_optimization(monkeypatch, name):
    """optax: AliasTest.test_optimization on its Rosenbrock target (float32;
    converges within 3e-2 in 10,000 steps, no recompilation on the second
    call, ``tree.map_params``); test_conformance.py runs the parabola."""
    body, case = _body(alias_test.AliasTest, "test_optimization")
    monkeypatch.setattr(
        alias_test, "_get_opt", lambda self, opt_name: OPTIMIZATION[opt_name][0]
    )
    body(
        case,
        opt_name=name,
        opt_kwargs=OPTIMIZATION[name][1],
        target=alias_test._setup_rosenbrock,
        dtype=jnp.float32,
    )


@pytest.mark.parametrize("name", NAMES)
def test_schedule_as_learning_rate(monkeypatch, name):
    """optax: ScheduleAsLearningRateTest.test_optimization: the factory's
    ``learning_rate`` is annotated ``optax.ScalarOrSchedule`` and a constant
    schedule gives the iterates of the constant."""
    body, case = _body(_schedule_test.ScheduleAsLearningRateTest, "test_optimization")
    namespace = types.SimpleNamespace(**{n: f for n, (f, _) in FACTORIES.items()})
    monkeypatch.setattr(_schedule_test, "alias", namespace)
    skipped = []
    monkeypatch.setattr(case, "skipTest", lambda reason: skipped.append(reason))
    body(case, opt_name=name, opt_kwargs=FACTORIES[name][1])
    assert not skipped, skipped  # it did not skip for want of an annotation


@pytest.mark.parametrize(
    "factory", [dynopt.sgd, dynopt.momentum, dynopt.nesterov, dynopt.adam]
)
def test_learning_rate_annotation_is_optax_object(factory):
    """What ScheduleAsLearningRateTest reads, by inspect and by get_type_hints."""
    param = inspect.signature(factory).parameters["learning_rate"]
    assert param.annotation is optax.ScalarOrSchedule
    hints = typing.get_type_hints(factory)
    assert hints["learning_rate"] == optax.ScalarOrSchedule


@pytest.mark.parametrize("state_dtype", ["bfloat16", "float32", None])
@pytest.mark.parametrize("params_dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_explicit_dtype(name, params_dtype, state_dtype):
    """Reproduces optax: AliasTest.test_explicit_dtype, which builds optax's
    ``sgd(momentum=...)`` / ``adam(mu_dtype=...)`` itself: dynopt's buffers
    take ``accumulator_dtype``, or the parameters' dtype when it is None."""
    factory = {"momentum": dynopt.momentum, "adam": dynopt.adam}[name]
    opt = factory(0.1, accumulator_dtype=state_dtype)
    attribute = {"momentum": "momentum", "adam": "mu"}[name]
    params_dtype = jax.dtypes.canonicalize_dtype(params_dtype)
    state = opt.init(jnp.array([0.0, 0.0], dtype=params_dtype))
    expected = params_dtype if state_dtype is None else jnp.dtype(state_dtype)
    assert getattr(state, attribute).dtype == expected


def test_inject_state_equals_plain_state_for_every_factory():
    """optax requires inject_hyperparams(f)(...).inner_state to be structurally
    f(...).init(params); checked here on every dynopt factory (also the ones
    AliasTest's list does not hold)."""
    params = [jnp.ones((2, 3)), jnp.zeros(4)]
    for factory, kwargs in [
        (dynopt.sgd, {"learning_rate": 0.1, "weight_decay": 0.01}),
        (dynopt.momentum, {"learning_rate": 0.1, "beta": 0.9, "dampening": 0.1}),
        (dynopt.nag_c, {"learning_rate": 0.1}),
        (dynopt.heun, {"learning_rate": 0.1}),
        (functools.partial(dynopt.adam, eps_root=1e-8), {"learning_rate": 0.1}),
    ]:
        plain = factory(**kwargs).init(params)
        inner = optax.inject_hyperparams(factory)(**kwargs).init(params).inner_state
        assert jax.tree.structure(plain) == jax.tree.structure(inner)
        test_utils.assert_trees_all_close(inner, plain, rtol=1e-6)
