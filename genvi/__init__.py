"""genvi: generative models from variational inference on joint distributions."""

from ._src.adversarial import Adversarial as Adversarial
from ._src.adversarial import AdversarialState as AdversarialState
from ._src.adversarial import aae_trainer as aae_trainer
from ._src.adversarial import ali_trainer as ali_trainer
from ._src.adversarial import gan_trainer as gan_trainer
from ._src.adversarial import pack as pack
from ._src.adversarial import run_cycles as run_cycles
from ._src.core import ElboTerms as ElboTerms
from ._src.core import JointKL as JointKL
from ._src.core import LossOut as LossOut
from ._src.core import elbo_terms as elbo_terms
from ._src.core import importance_log_weights as importance_log_weights
from ._src.core import joint_kl as joint_kl
from ._src.core import log_mean_exp as log_mean_exp
from ._src.distributions import bernoulli_log_prob as bernoulli_log_prob
from ._src.distributions import gaussian_log_prob as gaussian_log_prob
from ._src.distributions import reparameterize as reparameterize
from ._src.divergences import gaussian_kl as gaussian_kl
from ._src.losses.aae import aae_autoencoder_loss as aae_autoencoder_loss
from ._src.losses.aae import aae_discriminator_loss as aae_discriminator_loss
from ._src.losses.ali import ali_discriminator_loss as ali_discriminator_loss
from ._src.losses.ali import ali_generator_loss as ali_generator_loss
from ._src.losses.em import GMMParams as GMMParams
from ._src.losses.em import gmm_em as gmm_em
from ._src.losses.em import gmm_log_likelihood as gmm_log_likelihood
from ._src.losses.em import gmm_log_prob as gmm_log_prob
from ._src.losses.em import gmm_m_step as gmm_m_step
from ._src.losses.em import gmm_posterior as gmm_posterior
from ._src.losses.gan import gan_discriminator_loss as gan_discriminator_loss
from ._src.losses.gan import gan_generator_loss as gan_generator_loss
from ._src.losses.gan import r1_penalty as r1_penalty
from ._src.losses.vae import iwae_bound as iwae_bound
from ._src.losses.vae import iwae_log_likelihood as iwae_log_likelihood
from ._src.losses.vae import vae_loss as vae_loss
from ._src.mixtures import Mixture as Mixture
from ._src.mixtures import mixture as mixture
from ._src.mixtures import mode_metrics as mode_metrics
from ._src.mixtures import sample_mixture as sample_mixture
from ._src.models import MLP as MLP
from ._src.models import ConvDecoder as ConvDecoder
from ._src.models import ConvEncoder as ConvEncoder
from ._src.models import MLPDecoder as MLPDecoder
from ._src.models import MLPEncoder as MLPEncoder

__all__ = [
    "Adversarial",
    "AdversarialState",
    "ConvDecoder",
    "ConvEncoder",
    "ElboTerms",
    "GMMParams",
    "JointKL",
    "LossOut",
    "MLP",
    "MLPDecoder",
    "MLPEncoder",
    "Mixture",
    "aae_autoencoder_loss",
    "aae_discriminator_loss",
    "aae_trainer",
    "ali_discriminator_loss",
    "ali_generator_loss",
    "ali_trainer",
    "bernoulli_log_prob",
    "elbo_terms",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gan_trainer",
    "gaussian_kl",
    "gaussian_log_prob",
    "gmm_em",
    "gmm_log_likelihood",
    "gmm_log_prob",
    "gmm_m_step",
    "gmm_posterior",
    "importance_log_weights",
    "iwae_bound",
    "iwae_log_likelihood",
    "joint_kl",
    "log_mean_exp",
    "mixture",
    "mode_metrics",
    "pack",
    "r1_penalty",
    "reparameterize",
    "run_cycles",
    "sample_mixture",
    "vae_loss",
]
