"""genvi: generative models from variational inference on joint distributions."""

from ._src.core import LossOut as LossOut
from ._src.models import MLP as MLP

__all__ = [
    "LossOut",
    "MLP",
]
