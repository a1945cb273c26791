"""Bad input gets a clear error naming the function, the argument, rule and value.

Every ``match`` below ends with the value received (``got ...``), as STYLE asks.
Unknown keyword options: the factories have explicit signatures, so Python
itself raises ``TypeError: momentum() got an unexpected keyword argument 'x'``,
which names the function and the option.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynopt

FACTORIES = [
    dynopt.sgd,
    dynopt.momentum,
    dynopt.nesterov,
    dynopt.adam,
    dynopt.nag_c,
    dynopt.heun,
]


def _got(value):
    """The end of a message: ``got <repr(value)>``, as a regular expression."""
    return "got " + re.escape(repr(value))


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize(
    "lr", [-0.1, math.nan, math.inf, np.float32(-1.0), jnp.asarray(-0.5)]
)
def test_negative_or_non_finite_learning_rate(factory, lr):
    name = factory.__name__
    with pytest.raises(
        ValueError,
        match=rf"{name}: `learning_rate` must be finite and >= 0, {_got(lr)}$",
    ):
        factory(lr)


@pytest.mark.parametrize("factory", FACTORIES)
def test_learning_rate_must_be_scalar_or_schedule(factory):
    with pytest.raises(
        ValueError, match=r"`learning_rate` must be a scalar, got shape \(3,\)$"
    ):
        factory(jnp.ones(3))
    with pytest.raises(
        TypeError, match=r"`learning_rate` must be a float, a scalar.*got '0\.1'$"
    ):
        factory("0.1")


@pytest.mark.parametrize("factory", [dynopt.momentum, dynopt.nesterov])
@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, math.nan])
def test_beta_outside_unit_interval(factory, beta):
    name = factory.__name__
    with pytest.raises(
        ValueError, match=rf"{name}: `beta` must satisfy 0 <= beta < 1, {_got(beta)}$"
    ):
        factory(0.1, beta)


@pytest.mark.parametrize("name", ["b1", "b2"])
def test_adam_decays_outside_unit_interval(name):
    with pytest.raises(
        ValueError, match=rf"adam: `{name}` must satisfy 0 <= {name} < 1, got 1\.5$"
    ):
        dynopt.adam(0.1, **{name: 1.5})


@pytest.mark.parametrize("d", [-0.5, 1.0])
def test_dampening_range(d):
    with pytest.raises(
        ValueError,
        match=rf"momentum: `dampening` must satisfy 0 <= dampening < 1, {_got(d)}$",
    ):
        dynopt.momentum(0.1, 0.9, dampening=d)


def test_nesterov_with_dampening():
    with pytest.raises(
        ValueError, match=r"nesterov: `dampening` must be 0 with Nesterov .*got 0\.1$"
    ):
        dynopt.nesterov(0.1, 0.9, dampening=0.1)
    with pytest.raises(
        ValueError, match=r"nesterov: `dampening` must be 0 with Nesterov .*got 0\.2$"
    ):
        dynopt.momentum(0.1, 0.9, dampening=0.2, nesterov=True)


def test_half_step_with_dampening():
    with pytest.raises(
        ValueError,
        match=r"momentum: `init_velocity='half_step'` needs `dampening` = 0, got 0\.1$",
    ):
        dynopt.momentum(0.1, 0.9, dampening=0.1, init_velocity="half_step")


@pytest.mark.parametrize("factory", [dynopt.momentum, dynopt.nesterov])
def test_unknown_option_values(factory):
    name = factory.__name__
    with pytest.raises(
        ValueError,
        match=rf"{name}: `init_velocity` must be one of \('zero', 'half_step'\), "
        r"got 'rest'$",
    ):
        factory(0.1, init_velocity="rest")


@pytest.mark.parametrize("factory", FACTORIES)
def test_unknown_keyword_names_the_function_and_the_option(factory):
    # Explicit signatures: Python's own TypeError names both.
    with pytest.raises(
        TypeError,
        match=rf"{factory.__name__}\(\) got an unexpected keyword argument 'momentum'",
    ):
        factory(0.1, momentum=0.9)


def test_unknown_hessian_method():
    with pytest.raises(
        ValueError,
        match=r"nesterov: `hessian` must be one of \('hvp', 'finite_difference'\), "
        r"got 'exact'$",
    ):
        dynopt.nesterov(0.1, hessian="exact")


def test_nesterov_flag_must_be_bool():
    with pytest.raises(TypeError, match=r"momentum: `nesterov` must be a bool, got 1$"):
        dynopt.momentum(0.1, nesterov=1)


@pytest.mark.parametrize("factory", [dynopt.sgd, dynopt.momentum, dynopt.adam])
def test_negative_weight_decay(factory):
    name = factory.__name__
    with pytest.raises(
        ValueError,
        match=rf"{name}: `weight_decay` must satisfy 0 <= weight_decay < inf, "
        r"got -0\.0001$",
    ):
        factory(0.1, weight_decay=-1e-4)


@pytest.mark.parametrize("wd", [1e-4, 0.0])
def test_weight_decay_needs_params(wd):
    opt = dynopt.momentum(0.1, weight_decay=wd)
    with pytest.raises(
        ValueError, match=r"momentum: `weight_decay` needs `params`.*got params=None$"
    ):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)))


@pytest.mark.parametrize(
    "new", [2.0, np.float64(2.0), jnp.asarray(2.0)], ids=["float", "numpy", "jax"]
)
def test_retune_hold_effective_rate_rejects_a_negative_beta(new):
    """lr' = 2 > lr / (1 - beta) = 1 would give beta' = -1: concrete arrays too."""
    with pytest.raises(
        ValueError,
        match=r"retune_hold_effective_rate: `new_learning_rate` must satisfy "
        rf"0 < new_learning_rate <= learning_rate / \(1 - beta\) = 1, {_got(new)}$",
    ):
        dynopt.retune_hold_effective_rate(0.1, 0.9, new)


def test_retune_rules_traced_inputs_are_not_checked():
    """Inside jit nothing can be checked: the formula comes back as documented."""
    beta = jax.jit(dynopt.retune_hold_effective_rate)(0.1, 0.9, 2.0)
    assert float(beta) == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize("new", [20.0, jnp.asarray(20.0)], ids=["float", "jax"])
def test_retune_hold_friction_rejects_a_negative_beta(new):
    """beta' >= 0 needs lr' <= (1 + beta) lr / (1 - beta)^2 = 19 here."""
    with pytest.raises(
        ValueError,
        match=r"retune_hold_friction: `new_learning_rate` must satisfy .* = 19 "
        rf"\(beyond it the new beta is negative\), {_got(new)}$",
    ):
        dynopt.retune_hold_friction(0.1, 0.9, new)
    # At the bound the new beta is 0 (to float32 rounding).
    assert float(dynopt.retune_hold_friction(0.1, 0.9, 19.0)) == pytest.approx(
        0.0, abs=1e-6
    )


@pytest.mark.parametrize(
    "fn", [dynopt.retune_hold_friction, dynopt.retune_hold_effective_rate]
)
def test_retune_rules_check_each_input(fn):
    name = fn.__name__
    with pytest.raises(
        ValueError, match=rf"{name}: `beta` must satisfy 0 <= beta < 1, got 1\.2$"
    ):
        fn(0.1, 1.2, 0.2)
    for arg, args in (
        ("learning_rate", (0.0, 0.9, 0.1)),
        ("new_learning_rate", (0.1, 0.9, 0.0)),
    ):
        with pytest.raises(
            ValueError, match=rf"{name}: `{arg}` must be finite and > 0, got 0\.0$"
        ):
            fn(*args)
    with pytest.raises(
        ValueError, match=rf"{name}: `learning_rate` must be finite and > 0, got nan$"
    ):
        fn(math.nan, 0.9, 0.1)
    with pytest.raises(
        TypeError,
        match=rf"{name}: `new_learning_rate` must be a float or a scalar array, "
        r"got <function",
    ):
        fn(0.1, 0.9, lambda k: 0.1)
    with pytest.raises(
        TypeError, match=rf"{name}: `learning_rate` must be a float .*got True$"
    ):
        fn(True, 0.9, 0.1)


def test_set_hyperparams_unknown_name():
    state = dynopt.sgd(0.1).init(jnp.ones(2))
    with pytest.raises(
        ValueError,
        match=r"set_hyperparams: no hyperparameter named \['beta'\] in the state; "
        r"it holds \['learning_rate'\]$",
    ):
        dynopt.set_hyperparams(state, beta=0.5)
    # weight_decay=None (the default) keeps no leaf: it cannot be set later
    with pytest.raises(
        ValueError, match=r"no hyperparameter named \['weight_decay'\] in the state"
    ):
        dynopt.set_hyperparams(state, weight_decay=0.1)


def test_ode_to_momentum_checks():
    with pytest.raises(
        ValueError,
        match=r"ode_to_momentum: `gamma` must satisfy 0 <= gamma < inf, got -0\.1$",
    ):
        dynopt.ode_to_momentum(-0.1, 1.0)
