"""Training of Elman, LSTM and GRU networks: optimisers, clipping, Pascanu's Omega (Elman), truncated
BPTT over streams, the loop, checkpoints."""
from . import checkpoint
from .clip import clip_by_global_norm, clip_by_value, clip_per_param_norm, fallback, global_norm, untrustworthy
from .config import TrainConfig, read_toml, resolve
from .loop import Diverged, lag_fraction, train
from .omega import omega, omega_value
from .optim import Optimizer, adagrad, adam, momentum, rmsprop, sgd
from .tbptt import Stream, blocks, kept_terms, tbptt_gradients

__all__ = ["train", "TrainConfig", "resolve", "read_toml", "Diverged", "lag_fraction", "checkpoint",
           "sgd", "momentum", "adagrad", "rmsprop", "adam", "Optimizer",
           "global_norm", "clip_by_value", "clip_by_global_norm", "clip_per_param_norm", "fallback",
           "untrustworthy", "omega", "omega_value", "Stream", "blocks", "kept_terms", "tbptt_gradients"]
