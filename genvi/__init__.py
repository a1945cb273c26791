"""genvi: generative models from variational inference on joint distributions."""

from ._src.checkpoint import latest_checkpoint as latest_checkpoint
from ._src.checkpoint import restore_checkpoint as restore_checkpoint
from ._src.checkpoint import save_checkpoint as save_checkpoint
from ._src.core import LossOut as LossOut
from ._src.data import Digits as Digits
from ._src.data import Mnist as Mnist
from ._src.data import Split as Split
from ._src.data import digits_halves as digits_halves
from ._src.data import load_digits as load_digits
from ._src.data import load_mnist as load_mnist
from ._src.data import read_idx as read_idx
from ._src.data import stratified_split as stratified_split
from ._src.metrics import DigitsClassifier as DigitsClassifier
from ._src.metrics import class_histogram_kl as class_histogram_kl
from ._src.metrics import default_cache_dir as default_cache_dir
from ._src.metrics import digits_classifier as digits_classifier
from ._src.metrics import digits_metrics as digits_metrics
from ._src.metrics import frechet_distance as frechet_distance
from ._src.metrics import gaussian_frechet_distance as gaussian_frechet_distance
from ._src.metrics import precision_recall as precision_recall
from ._src.models import MLP as MLP
from ._src.train import NonFiniteWarning as NonFiniteWarning
from ._src.train import TrainState as TrainState
from ._src.train import gradient_step as gradient_step
from ._src.train import init_train_state as init_train_state
from ._src.train import merge_model as merge_model
from ._src.train import sample_batch as sample_batch
from ._src.train import shard_batch as shard_batch
from ._src.train import train as train

__all__ = [
    "Digits",
    "DigitsClassifier",
    "LossOut",
    "MLP",
    "Mnist",
    "NonFiniteWarning",
    "Split",
    "TrainState",
    "class_histogram_kl",
    "default_cache_dir",
    "digits_classifier",
    "digits_halves",
    "digits_metrics",
    "frechet_distance",
    "gaussian_frechet_distance",
    "gradient_step",
    "init_train_state",
    "latest_checkpoint",
    "load_digits",
    "load_mnist",
    "merge_model",
    "precision_recall",
    "read_idx",
    "restore_checkpoint",
    "sample_batch",
    "save_checkpoint",
    "shard_batch",
    "stratified_split",
    "train",
]
