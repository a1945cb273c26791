"""dynopt: optimisers as discretised differential equations.

An optimiser is a continuous-time model (a flow), a numerical scheme and a clock
mapping step ``k`` to ODE time ``t_k``. :func:`sgd`, :func:`momentum` and
:func:`nesterov` are drop-in optax transforms that carry their
:class:`Dynamics`.
"""

from ._src.adam import AdamFlow as AdamFlow
from ._src.adam import AdamState as AdamState
from ._src.adam import adam as adam
from ._src.alias import MomentumState as MomentumState
from ._src.alias import SgdState as SgdState
from ._src.alias import momentum as momentum
from ._src.alias import nesterov as nesterov
from ._src.alias import sgd as sgd
from ._src.base import Clock as Clock
from ._src.base import Dynamics as Dynamics
from ._src.base import Optimizer as Optimizer
from ._src.base import Scheme as Scheme
from ._src.base import get_hyperparams as get_hyperparams
from ._src.base import set_hyperparams as set_hyperparams
from ._src.flat import FlatLayout as FlatLayout
from ._src.flat import FlatParams as FlatParams
from ._src.flat import flat_optimizer as flat_optimizer
from ._src.flat import flatten as flatten
from ._src.flows import GradientFlow as GradientFlow
from ._src.flows import HeavyBallFlow as HeavyBallFlow
from ._src.flows import HessianDampedFlow as HessianDampedFlow
from ._src.flows import hessian_vector_product as hessian_vector_product
from ._src.flows import objective as objective
from ._src.maps import momentum_to_ode as momentum_to_ode
from ._src.maps import ode_to_momentum as ode_to_momentum
from ._src.maps import retune_hold_effective_rate as retune_hold_effective_rate
from ._src.maps import retune_hold_friction as retune_hold_friction
from ._src.mixed import MasterWeightsState as MasterWeightsState
from ._src.mixed import master_weights as master_weights
from ._src.sweep import SweepResult as SweepResult
from ._src.sweep import sweep as sweep

__all__ = [
    "AdamFlow",
    "AdamState",
    "Clock",
    "Dynamics",
    "FlatLayout",
    "FlatParams",
    "GradientFlow",
    "HeavyBallFlow",
    "HessianDampedFlow",
    "MasterWeightsState",
    "MomentumState",
    "Optimizer",
    "Scheme",
    "SgdState",
    "SweepResult",
    "adam",
    "flat_optimizer",
    "flatten",
    "get_hyperparams",
    "hessian_vector_product",
    "master_weights",
    "momentum",
    "momentum_to_ode",
    "nesterov",
    "objective",
    "ode_to_momentum",
    "retune_hold_effective_rate",
    "retune_hold_friction",
    "set_hyperparams",
    "sgd",
    "sweep",
]
