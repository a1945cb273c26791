"""genvi: generative models from variational inference on joint distributions."""

from ._src.adversarial import Adversarial as Adversarial
from ._src.adversarial import AdversarialState as AdversarialState
from ._src.adversarial import pack as pack
from ._src.adversarial import run_cycles as run_cycles
from ._src.checkpoint import CheckpointWarning as CheckpointWarning
from ._src.checkpoint import CheckpointWriter as CheckpointWriter
from ._src.checkpoint import latest_checkpoint as latest_checkpoint
from ._src.checkpoint import list_checkpoints as list_checkpoints
from ._src.checkpoint import restore_checkpoint as restore_checkpoint
from ._src.checkpoint import save_checkpoint as save_checkpoint
from ._src.core import ElboTerms as ElboTerms
from ._src.core import JointKL as JointKL
from ._src.core import LossOut as LossOut
from ._src.core import elbo_terms as elbo_terms
from ._src.core import importance_log_weights as importance_log_weights
from ._src.core import joint_kl as joint_kl
from ._src.core import log_mean_exp as log_mean_exp
from ._src.data import Digits as Digits
from ._src.data import Mnist as Mnist
from ._src.data import Split as Split
from ._src.data import digits_halves as digits_halves
from ._src.data import load_digits as load_digits
from ._src.data import load_mnist as load_mnist
from ._src.data import read_idx as read_idx
from ._src.data import stacked_digits as stacked_digits
from ._src.data import stratified_split as stratified_split
from ._src.dcgan import DCGANDiscriminator as DCGANDiscriminator
from ._src.dcgan import DCGANEncoder as DCGANEncoder
from ._src.dcgan import DCGANGenerator as DCGANGenerator
from ._src.distributions import bernoulli_log_prob as bernoulli_log_prob
from ._src.distributions import gaussian_log_prob as gaussian_log_prob
from ._src.distributions import reparameterize as reparameterize
from ._src.divergences import gaussian_kl as gaussian_kl
from ._src.game_training import record_params as record_params
from ._src.image_metrics import MnistClassifier as MnistClassifier
from ._src.image_metrics import mnist_classifier as mnist_classifier
from ._src.image_metrics import stacked_modes as stacked_modes
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
from ._src.metrics import DigitsClassifier as DigitsClassifier
from ._src.metrics import class_histogram_kl as class_histogram_kl
from ._src.metrics import default_cache_dir as default_cache_dir
from ._src.metrics import digits_classifier as digits_classifier
from ._src.metrics import digits_metrics as digits_metrics
from ._src.metrics import frechet_distance as frechet_distance
from ._src.metrics import gaussian_frechet_distance as gaussian_frechet_distance
from ._src.metrics import precision_recall as precision_recall
from ._src.mixtures import Mixture as Mixture
from ._src.mixtures import mixture as mixture
from ._src.mixtures import mode_metrics as mode_metrics
from ._src.mixtures import sample_mixture as sample_mixture
from ._src.models import MLP as MLP
from ._src.models import ConvDecoder as ConvDecoder
from ._src.models import ConvEncoder as ConvEncoder
from ._src.models import MLPDecoder as MLPDecoder
from ._src.models import MLPEncoder as MLPEncoder
from ._src.train import NonFiniteWarning as NonFiniteWarning
from ._src.train import TrainState as TrainState
from ._src.train import gradient_step as gradient_step
from ._src.train import init_train_state as init_train_state
from ._src.train import merge_model as merge_model
from ._src.train import sample_batch as sample_batch
from ._src.train import shard_batch as shard_batch
from ._src.train import train as train
from ._src.trainers import aae_trainer as aae_trainer
from ._src.trainers import ali_trainer as ali_trainer
from ._src.trainers import gan_trainer as gan_trainer

__all__ = [
    "Adversarial",
    "AdversarialState",
    "CheckpointWarning",
    "CheckpointWriter",
    "ConvDecoder",
    "ConvEncoder",
    "DCGANDiscriminator",
    "DCGANEncoder",
    "DCGANGenerator",
    "Digits",
    "DigitsClassifier",
    "ElboTerms",
    "GMMParams",
    "JointKL",
    "LossOut",
    "MLP",
    "MLPDecoder",
    "MLPEncoder",
    "Mixture",
    "Mnist",
    "MnistClassifier",
    "NonFiniteWarning",
    "Split",
    "TrainState",
    "aae_autoencoder_loss",
    "aae_discriminator_loss",
    "aae_trainer",
    "ali_discriminator_loss",
    "ali_generator_loss",
    "ali_trainer",
    "bernoulli_log_prob",
    "class_histogram_kl",
    "default_cache_dir",
    "digits_classifier",
    "digits_halves",
    "digits_metrics",
    "elbo_terms",
    "frechet_distance",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "gan_trainer",
    "gaussian_frechet_distance",
    "gaussian_kl",
    "gaussian_log_prob",
    "gmm_em",
    "gmm_log_likelihood",
    "gmm_log_prob",
    "gmm_m_step",
    "gmm_posterior",
    "gradient_step",
    "importance_log_weights",
    "init_train_state",
    "iwae_bound",
    "iwae_log_likelihood",
    "joint_kl",
    "latest_checkpoint",
    "list_checkpoints",
    "load_digits",
    "load_mnist",
    "log_mean_exp",
    "merge_model",
    "mixture",
    "mnist_classifier",
    "mode_metrics",
    "pack",
    "precision_recall",
    "r1_penalty",
    "read_idx",
    "record_params",
    "reparameterize",
    "restore_checkpoint",
    "run_cycles",
    "sample_batch",
    "sample_mixture",
    "save_checkpoint",
    "shard_batch",
    "stacked_digits",
    "stacked_modes",
    "stratified_split",
    "train",
    "vae_loss",
]
