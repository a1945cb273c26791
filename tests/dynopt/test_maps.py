"""The (learning_rate, beta) <-> (gamma, friction) map and the two retuning rules."""

import numpy as np
import pytest

import dynopt


@pytest.mark.parametrize("lr,beta", [(0.1, 0.9), (0.01, 0.5), (1e-3, 0.99)])
def test_map_inverts(x64, lr, beta):
    gamma, friction = dynopt.momentum_to_ode(lr, beta)
    lr2, beta2 = dynopt.ode_to_momentum(gamma, friction)
    np.testing.assert_allclose([lr2, beta2], [lr, beta], rtol=1e-13)


def test_hold_friction_keeps_friction(x64):
    lr, beta = 0.1, 0.9
    for r in [0.25, 0.5, 2.0, 4.0]:
        nb = dynopt.retune_hold_friction(lr, beta, r * lr)
        _, f0 = dynopt.momentum_to_ode(lr, beta)
        _, f1 = dynopt.momentum_to_ode(r * lr, nb)
        np.testing.assert_allclose(f1, f0, rtol=1e-12)


def test_hold_friction_square_root_law(x64):
    """1 - beta' ~ (1 - beta) sqrt(r) when the steps are small."""
    lr, beta = 1e-6, 0.999
    for r in [0.25, 4.0, 16.0]:
        nb = float(dynopt.retune_hold_friction(lr, beta, r * lr))
        assert (1 - nb) / ((1 - beta) * np.sqrt(r)) == pytest.approx(1.0, rel=1e-2)


def test_hold_effective_rate(x64):
    lr, beta = 0.1, 0.9
    nb = float(dynopt.retune_hold_effective_rate(lr, beta, 0.05))
    assert 0.05 / (1 - nb) == pytest.approx(lr / (1 - beta), rel=1e-12)
