"""Training: the recipe format, the multi-task objective, the trainer and synthetic balancing."""

from .balance import BalanceReport, balance
from .config import ConfigError, DataSpec, TrainConfig, load_config
from .losses import MultiTaskObjective
from .trainer import Trainer

__all__ = ["BalanceReport", "ConfigError", "DataSpec", "MultiTaskObjective", "TrainConfig", "Trainer", "balance", "load_config"]
