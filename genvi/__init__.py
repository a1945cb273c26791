"""genvi: generative models from variational inference on joint distributions."""

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
    "LossOut",
    "MLP",
    "Mixture",
    "aae_autoencoder_loss",
    "aae_discriminator_loss",
    "ali_discriminator_loss",
    "ali_generator_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "mixture",
    "mode_metrics",
    "r1_penalty",
    "sample_mixture",
]
