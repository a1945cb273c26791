"""dynopt: optimisers as discretised differential equations.

An optimiser is a continuous-time model (a flow), a numerical scheme and a clock
mapping step ``k`` to ODE time ``t_k``. :func:`sgd`, :func:`momentum` and
:func:`nesterov` are drop-in optax transforms that carry their
:class:`Dynamics`; all of them are built by :func:`discretise` from a flow and a
scheme (:class:`ExplicitEuler`, :class:`Leapfrog`, :class:`RK4`, ...). Games
(:class:`Game`, :func:`dirac_gan`, :func:`bilinear_game`) are flows of several
players, advanced by game schemes (:func:`game_scheme`; each is a minimisation
scheme run on the game, :class:`SchemeOnGame`) whose one-step spectral radius
:func:`game_spectral_radius` measures.
"""

from ._src.accelerated import HeunState as HeunState
from ._src.accelerated import NagCState as NagCState
from ._src.accelerated import NesterovConvex as NesterovConvex
from ._src.accelerated import heun as heun
from ._src.accelerated import nag_c as nag_c
from ._src.accelerated import nag_c_position as nag_c_position
from ._src.adam import AdamFlow as AdamFlow
from ._src.adam import AdamState as AdamState
from ._src.adam import SemiImplicitEuler as SemiImplicitEuler
from ._src.adam import adam as adam
from ._src.alias import MomentumState as MomentumState
from ._src.alias import SgdState as SgdState
from ._src.alias import momentum as momentum
from ._src.alias import nesterov as nesterov
from ._src.alias import sgd as sgd
from ._src.base import Optimizer as Optimizer
from ._src.base import get_hyperparams as get_hyperparams
from ._src.base import set_hyperparams as set_hyperparams
from ._src.compare import Gap as Gap
from ._src.compare import OrderStudy as OrderStudy
from ._src.compare import empirical_order as empirical_order
from ._src.compare import modified_equation as modified_equation
from ._src.compare import order_study as order_study
from ._src.compare import trajectory_gap as trajectory_gap
from ._src.discretise import DiscretisedState as DiscretisedState
from ._src.discretise import discretise as discretise
from ._src.dynamics import Clock as Clock
from ._src.dynamics import Dynamics as Dynamics
from ._src.dynamics import DynamicsAt as DynamicsAt
from ._src.dynamics import find_dynamics as find_dynamics
from ._src.flat import FlatLayout as FlatLayout
from ._src.flat import FlatParams as FlatParams
from ._src.flat import flat_optimizer as flat_optimizer
from ._src.flat import flatten as flatten
from ._src.flows import GradientFlow as GradientFlow
from ._src.flows import HeavyBallFlow as HeavyBallFlow
from ._src.flows import HessianDampedFlow as HessianDampedFlow
from ._src.flows import HighResolutionFlow as HighResolutionFlow
from ._src.flows import ModifiedGradientFlow as ModifiedGradientFlow
from ._src.flows import SuBoydCandesFlow as SuBoydCandesFlow
from ._src.flows import hessian_vector_product as hessian_vector_product
from ._src.flows import high_resolution_flow as high_resolution_flow
from ._src.flows import objective as objective
from ._src.game_analysis import GameTrajectory as GameTrajectory
from ._src.game_analysis import game_run as game_run
from ._src.game_analysis import game_spectral_radius as game_spectral_radius
from ._src.game_analysis import game_step_matrix as game_step_matrix
from ._src.game_analysis import game_trajectory as game_trajectory
from ._src.game_lifting import GameScheme as GameScheme
from ._src.game_lifting import GameState as GameState
from ._src.game_lifting import SchemeOnGame as SchemeOnGame
from ._src.game_schemes import AlternatingMomentum as AlternatingMomentum
from ._src.game_schemes import AlternatingSteps as AlternatingSteps
from ._src.game_schemes import ConsensusOptimization as ConsensusOptimization
from ._src.game_schemes import ExtraGradient as ExtraGradient
from ._src.game_schemes import GameEMA as GameEMA
from ._src.game_schemes import OptimisticGradient as OptimisticGradient
from ._src.game_schemes import ProximalPoint as ProximalPoint
from ._src.game_schemes import SimultaneousSteps as SimultaneousSteps
from ._src.game_schemes import SuProximal as SuProximal
from ._src.game_schemes import game_scheme as game_scheme
from ._src.games import Game as Game
from ._src.games import bilinear_game as bilinear_game
from ._src.games import dirac_gan as dirac_gan
from ._src.maps import momentum_to_ode as momentum_to_ode
from ._src.maps import ode_to_momentum as ode_to_momentum
from ._src.maps import retune_hold_effective_rate as retune_hold_effective_rate
from ._src.maps import retune_hold_friction as retune_hold_friction
from ._src.mixed import MasterWeightsState as MasterWeightsState
from ._src.mixed import master_weights as master_weights
from ._src.moments import momentum_stationary_variance as momentum_stationary_variance
from ._src.moments import sgd_second_moment as sgd_second_moment
from ._src.moments import sgd_stationary_variance as sgd_stationary_variance
from ._src.moments import sme_second_moment as sme_second_moment
from ._src.moments import sme_stationary_variance as sme_stationary_variance
from ._src.noise import AdamHyperparams as AdamHyperparams
from ._src.noise import GradientNoise as GradientNoise
from ._src.noise import critical_batch_size as critical_batch_size
from ._src.noise import gradient_covariance as gradient_covariance
from ._src.noise import gradient_noise as gradient_noise
from ._src.noise import linear_scaling_rule as linear_scaling_rule
from ._src.noise import noise_scale as noise_scale
from ._src.noise import per_example_gradients as per_example_gradients
from ._src.noise import sqrt_scaling_rule as sqrt_scaling_rule
from ._src.schemes import RK4 as RK4
from ._src.schemes import ConformalSymplectic as ConformalSymplectic
from ._src.schemes import ExplicitEuler as ExplicitEuler
from ._src.schemes import Heun as Heun
from ._src.schemes import Leapfrog as Leapfrog
from ._src.schemes import Lookahead as Lookahead
from ._src.schemes import Scheme as Scheme
from ._src.schemes import SymplecticEuler as SymplecticEuler
from ._src.schemes_games import ImplicitEuler as ImplicitEuler
from ._src.schemes_games import Korpelevich as Korpelevich
from ._src.schemes_games import Optimistic as Optimistic
from ._src.sde import Paths as Paths
from ._src.sde import SdePaths as SdePaths
from ._src.sde import noisy_paths as noisy_paths
from ._src.sde import stochastic_modified_equation as stochastic_modified_equation
from ._src.stability import numerical_stability_limit as numerical_stability_limit
from ._src.stability import sharpness as sharpness
from ._src.stability import sharpness_along as sharpness_along
from ._src.stability import spectral_radius as spectral_radius
from ._src.stability import stability_limit as stability_limit
from ._src.stability import step_matrix as step_matrix
from ._src.sweep import SweepResult as SweepResult
from ._src.sweep import sweep as sweep
from ._src.trajectory import Trajectory as Trajectory
from ._src.trajectory import continuous_trajectory as continuous_trajectory
from ._src.trajectory import discrete_trajectory as discrete_trajectory

__all__ = [
    "AdamFlow",
    "AdamHyperparams",
    "AdamState",
    "AlternatingMomentum",
    "AlternatingSteps",
    "Clock",
    "ConformalSymplectic",
    "ConsensusOptimization",
    "DiscretisedState",
    "Dynamics",
    "DynamicsAt",
    "ExplicitEuler",
    "ExtraGradient",
    "FlatLayout",
    "FlatParams",
    "Game",
    "GameEMA",
    "GameScheme",
    "GameState",
    "GameTrajectory",
    "Gap",
    "GradientFlow",
    "GradientNoise",
    "HeavyBallFlow",
    "HessianDampedFlow",
    "Heun",
    "HeunState",
    "HighResolutionFlow",
    "ImplicitEuler",
    "Korpelevich",
    "Leapfrog",
    "Lookahead",
    "MasterWeightsState",
    "ModifiedGradientFlow",
    "MomentumState",
    "NagCState",
    "NesterovConvex",
    "Optimistic",
    "OptimisticGradient",
    "Optimizer",
    "OrderStudy",
    "Paths",
    "ProximalPoint",
    "RK4",
    "Scheme",
    "SchemeOnGame",
    "SdePaths",
    "SemiImplicitEuler",
    "SgdState",
    "SimultaneousSteps",
    "SuBoydCandesFlow",
    "SuProximal",
    "SweepResult",
    "SymplecticEuler",
    "Trajectory",
    "adam",
    "bilinear_game",
    "continuous_trajectory",
    "critical_batch_size",
    "dirac_gan",
    "discrete_trajectory",
    "discretise",
    "empirical_order",
    "find_dynamics",
    "flat_optimizer",
    "flatten",
    "game_run",
    "game_scheme",
    "game_spectral_radius",
    "game_step_matrix",
    "game_trajectory",
    "get_hyperparams",
    "gradient_covariance",
    "gradient_noise",
    "hessian_vector_product",
    "heun",
    "high_resolution_flow",
    "linear_scaling_rule",
    "master_weights",
    "modified_equation",
    "momentum",
    "momentum_stationary_variance",
    "momentum_to_ode",
    "nag_c",
    "nag_c_position",
    "nesterov",
    "noise_scale",
    "noisy_paths",
    "numerical_stability_limit",
    "objective",
    "ode_to_momentum",
    "order_study",
    "per_example_gradients",
    "retune_hold_effective_rate",
    "retune_hold_friction",
    "set_hyperparams",
    "sgd",
    "sgd_second_moment",
    "sgd_stationary_variance",
    "sharpness",
    "sharpness_along",
    "sme_second_moment",
    "sme_stationary_variance",
    "spectral_radius",
    "sqrt_scaling_rule",
    "stability_limit",
    "step_matrix",
    "stochastic_modified_equation",
    "sweep",
    "trajectory_gap",
]
