"""genvi: generative models from variational inference on joint distributions."""

from ._src.adversarial import Adversarial as Adversarial
from ._src.adversarial import AdversarialState as AdversarialState
from ._src.adversarial import aae_trainer as aae_trainer
from ._src.adversarial import ali_trainer as ali_trainer
from ._src.adversarial import gan_trainer as gan_trainer
from ._src.adversarial import pack as pack
from ._src.adversarial import run_cycles as run_cycles
from ._src.core import LossOut as LossOut
from ._src.losses.aae import aae_autoencoder_loss as aae_autoencoder_loss
from ._src.losses.aae import aae_discriminator_loss as aae_discriminator_loss
from ._src.losses.ali import ali_discriminator_loss as ali_discriminator_loss
from ._src.losses.ali import ali_generator_loss as ali_generator_loss
from ._src.losses.gan import gan_discriminator_loss as gan_discriminator_loss
from ._src.losses.gan import gan_generator_loss as gan_generator_loss
from ._src.losses.gan import r1_penalty as r1_penalty
from ._src.mixtures import Mixture as Mixture
from ._src.mixtures import mixture as mixture
from ._src.mixtures import mode_metrics as mode_metrics
from ._src.mixtures import sample_mixture as sample_mixture
from ._src.models import MLP as MLP

__all__ = [
    "Adversarial",
    "AdversarialState",
    "LossOut",
    "MLP",
    "Mixture",
    "aae_autoencoder_loss",
    "aae_discriminator_loss",
    "aae_trainer",
    "ali_discriminator_loss",
    "ali_generator_loss",
    "ali_trainer",
    "gan_trainer",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "mixture",
    "mode_metrics",
    "pack",
    "r1_penalty",
    "run_cycles",
    "sample_mixture",
]
