"""Gaps, empirical orders, and the order of every scheme against its own flow."""

import jax.numpy as jnp
import numpy as np
import pytest

import dynopt
from tests import tolerances as tol
from tests.dynopt.lab_problems import quadratic, r2_quadratic, r6_quadratic

R6_GAMMAS = [0.1, 0.05, 0.025, 0.0125]


def test_empirical_order_recovers_a_power_law():
    h = np.array([0.3, 0.1, 0.03, 0.01])
    assert dynopt.empirical_order(h, 7.0 * h**1.5) == pytest.approx(1.5, abs=1e-12)


def test_empirical_order_errors():
    with pytest.raises(
        ValueError, match=r"empirical_order: `errors` must be finite and > 0"
    ):
        dynopt.empirical_order([0.1, 0.05], [1e-2, 0.0])
    with pytest.raises(ValueError, match=r"must be 1-D of the same length >= 2"):
        dynopt.empirical_order([0.1], [1e-2])
    with pytest.raises(ValueError, match=r"`step_sizes` must hold two distinct values"):
        dynopt.empirical_order([0.1, 0.1], [1e-2, 2e-2])


def _traj(times, x, loss):
    return dynopt.Trajectory(jnp.asarray(times), x, jnp.asarray(loss))


def test_trajectory_gap_max_and_final():
    a = _traj([0.0, 1.0, 2.0], {"w": jnp.array([[0.0, 0], [1, 1], [2, 2]])}, [0, 1, 2])
    b = _traj(
        [0.0, 1.0, 2.0], {"w": jnp.array([[0.0, 0], [1, 4], [2, 3]])}, [0, 3, 1.5]
    )
    gap = dynopt.trajectory_gap(a, b)
    assert float(gap.max_params) == 3.0 and float(gap.final_params) == 1.0
    assert float(gap.max_loss) == 2.0 and float(gap.final_loss) == 0.5
    l2 = dynopt.trajectory_gap(a, b, norm="l2")
    assert float(l2.max_params) == 3.0 and float(l2.final_params) == 1.0


def test_trajectory_gap_errors():
    a = _traj([0.0, 1.0], {"w": jnp.zeros((2, 2))}, [0, 0])
    with pytest.raises(
        ValueError,
        match=r"trajectory_gap: `a` and `b` must have the same tree structure",
    ):
        dynopt.trajectory_gap(a, _traj([0.0, 1.0], {"v": jnp.zeros((2, 2))}, [0, 0]))
    with pytest.raises(ValueError, match=r"must be sampled at the same times"):
        dynopt.trajectory_gap(a, _traj([0.0, 2.0], {"w": jnp.zeros((2, 2))}, [0, 0]))
    with pytest.raises(
        ValueError, match=r"must have the same number of points, got 2 and 3"
    ):
        dynopt.trajectory_gap(
            a, _traj([0.0, 1, 2], {"w": jnp.zeros((3, 2))}, [0, 0, 0])
        )
    with pytest.raises(ValueError, match=r"leaves must have the same shapes"):
        dynopt.trajectory_gap(a, _traj([0.0, 1.0], {"w": jnp.zeros((2, 3))}, [0, 0]))
    with pytest.raises(
        ValueError, match=r"`norm` must be one of \('inf', 'l2'\), got 'l1'"
    ):
        dynopt.trajectory_gap(a, a, norm="l1")


def test_modified_equation_only_for_plain_sgd():
    assert float(dynopt.modified_equation(dynopt.sgd(0.1)).learning_rate) == 0.1
    with pytest.raises(
        ValueError, match=r"modified_equation: `optimizer` must be dynopt.sgd"
    ):
        dynopt.modified_equation(dynopt.momentum(0.1))


def test_order_study_errors():
    with pytest.raises(ValueError, match=r"order_study: `reduce` must be one of"):
        dynopt.order_study(
            dynopt.sgd, quadratic, jnp.ones(1), [0.1], 1.0, reduce="mean"
        )
    with pytest.raises(ValueError, match=r"`horizon` must be at least one clock step"):
        dynopt.order_study(dynopt.sgd, quadratic, jnp.ones(1), [0.1, 0.05], 0.01)


def _momentum_family(factory, start):
    def make(gamma):
        lr, beta = dynopt.ode_to_momentum(gamma, 1.0)
        return factory(float(lr), float(beta), init_velocity=start)

    return make


@pytest.mark.parametrize(
    "start, errors, order",
    [
        ("zero", [7.26e-2, 3.59e-2, 1.79e-2, 8.91e-3], 1.0),
        ("half_step", [4.90e-3, 1.22e-3, 3.05e-4, 7.63e-5], 2.0),
    ],
)
def test_reference_r6_momentum_order_through_the_api(x64, start, errors, order):
    """Momentum vs its heavy-ball flow (lam = 1), max error over t <= 10."""
    study = dynopt.order_study(
        _momentum_family(dynopt.momentum, start),
        r6_quadratic,
        jnp.ones(2),
        R6_GAMMAS,
        10.0,
    )
    np.testing.assert_allclose(study.step_sizes, R6_GAMMAS, rtol=1e-12)
    np.testing.assert_allclose(study.errors, errors, **tol.REFERENCE_3SIG)
    assert abs(study.order - order) < tol.ORDER_SLOPE


@pytest.mark.parametrize("start, order", [("zero", 1.0), ("half_step", 2.0)])
def test_nesterov_order_against_its_hessian_damped_flow(x64, start, order):
    """Look-ahead momentum vs x'' + (lam + beta gamma H) x' + grad f = 0."""
    study = dynopt.order_study(
        _momentum_family(dynopt.nesterov, start),
        r6_quadratic,
        jnp.ones(2),
        [0.05, 0.025, 0.0125, 0.00625],
        10.0,
    )
    assert abs(study.order - order) < tol.ORDER_SLOPE, study


def test_heun_is_second_order_for_the_gradient_flow(x64):
    study = dynopt.order_study(
        dynopt.heun, r6_quadratic, jnp.ones(2), [0.1, 0.05, 0.025, 0.0125], 2.0
    )
    assert abs(study.order - 2.0) < tol.ORDER_SLOPE, study


def test_sgd_is_first_order_for_the_gradient_flow(x64):
    study = dynopt.order_study(
        dynopt.sgd, r6_quadratic, jnp.ones(2), [0.1, 0.05, 0.025, 0.0125], 2.0
    )
    assert abs(study.order - 1.0) < tol.ORDER_SLOPE, study


def test_reference_r2_nag_c_vs_su_boyd_candes(x64):
    """max over t <= 300 of |x_k - X(k sqrt s)|_inf, s = 1, 1/4, 1/20."""
    study = dynopt.order_study(
        dynopt.nag_c, r2_quadratic, jnp.ones(2), [1.0, 0.25, 0.05], 300.0
    )
    np.testing.assert_allclose(study.errors, [0.145, 0.074, 0.033], rtol=0.02)
    assert abs(study.order - 1.0) < tol.ORDER_SLOPE
