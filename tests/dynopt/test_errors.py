"""Bad input gets a clear error naming the function, the argument, rule and value."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import dynopt

FACTORIES = [dynopt.sgd, dynopt.momentum, dynopt.nesterov]


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize(
    "lr", [-0.1, math.nan, math.inf, np.float32(-1.0), jnp.asarray(-0.5)]
)
def test_negative_or_non_finite_learning_rate(factory, lr):
    with pytest.raises(
        ValueError, match=r"`learning_rate` must be finite and >= 0, got"
    ):
        factory(lr)


@pytest.mark.parametrize("factory", FACTORIES)
def test_learning_rate_must_be_scalar_or_schedule(factory):
    with pytest.raises(
        ValueError, match=r"`learning_rate` must be a scalar, got shape"
    ):
        factory(jnp.ones(3))
    with pytest.raises(TypeError, match=r"`learning_rate` must be a float, a scalar"):
        factory("0.1")


@pytest.mark.parametrize("factory", [dynopt.momentum, dynopt.nesterov])
@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, math.nan])
def test_beta_outside_unit_interval(factory, beta):
    name = factory.__name__
    with pytest.raises(ValueError, match=rf"{name}: `beta` must satisfy 0 <= beta < 1"):
        factory(0.1, beta)


@pytest.mark.parametrize("d", [-0.5, 1.0])
def test_dampening_range(d):
    with pytest.raises(
        ValueError, match=r"`dampening` must satisfy 0 <= dampening < 1"
    ):
        dynopt.momentum(0.1, 0.9, dampening=d)


def test_nesterov_with_dampening():
    with pytest.raises(
        ValueError, match=r"nesterov: `dampening` must be 0 with Nesterov"
    ):
        dynopt.nesterov(0.1, 0.9, dampening=0.1)
    with pytest.raises(
        ValueError, match=r"nesterov: `dampening` must be 0 with Nesterov"
    ):
        dynopt.momentum(0.1, 0.9, dampening=0.1, nesterov=True)


def test_half_step_with_dampening():
    with pytest.raises(
        ValueError, match=r"`init_velocity='half_step'` needs `dampening`"
    ):
        dynopt.momentum(0.1, 0.9, dampening=0.1, init_velocity="half_step")


@pytest.mark.parametrize("factory", [dynopt.momentum, dynopt.nesterov])
def test_unknown_option_values(factory):
    with pytest.raises(ValueError, match=r"`init_velocity` must be one of \('zero', "):
        factory(0.1, init_velocity="rest")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'momentum'"):
        factory(0.1, momentum=0.9)


def test_unknown_hessian_method():
    with pytest.raises(ValueError, match=r"`hessian` must be one of \('hvp', "):
        dynopt.nesterov(0.1, hessian="exact")


def test_nesterov_flag_must_be_bool():
    with pytest.raises(TypeError, match=r"`nesterov` must be a bool, got 1"):
        dynopt.momentum(0.1, nesterov=1)


@pytest.mark.parametrize("factory", FACTORIES)
def test_negative_weight_decay(factory):
    with pytest.raises(
        ValueError, match=r"`weight_decay` must satisfy 0 <= weight_decay"
    ):
        factory(0.1, weight_decay=-1e-4)


def test_weight_decay_needs_params():
    opt = dynopt.momentum(0.1, weight_decay=1e-4)
    with pytest.raises(ValueError, match=r"momentum: `weight_decay` needs `params`"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)))


def test_retune_rules():
    with pytest.raises(ValueError, match=r"`new_learning_rate` must satisfy 0 < "):
        dynopt.retune_hold_effective_rate(0.1, 0.9, 2.0)
    with pytest.raises(ValueError, match=r"retune_hold_friction: `beta` must satisfy"):
        dynopt.retune_hold_friction(0.1, 1.2, 0.2)


def test_set_hyperparams_unknown_name():
    state = dynopt.sgd(0.1).init(jnp.ones(2))
    with pytest.raises(ValueError, match=r"no hyperparameter named \['beta'\]"):
        dynopt.set_hyperparams(state, beta=0.5)


def test_ode_to_momentum_checks():
    with pytest.raises(
        ValueError, match=r"ode_to_momentum: `gamma` must satisfy 0 <= "
    ):
        dynopt.ode_to_momentum(-0.1, 1.0)
