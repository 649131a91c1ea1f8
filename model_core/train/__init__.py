"""Training: the recipe format, the multi-task objective, the trainer and synthetic balancing.

The recipe machinery (``TrainConfig``, ``Trainer``, ...) validates recipes with pydantic and is
imported on first use, so that the parts that need only PyTorch (:mod:`.teacher`, :mod:`.teachers`)
run on a bare GPU image that has PyTorch but not the service's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

from .balance import BalanceReport, balance

_LAZY = {
    "ConfigError": ".config",
    "DataSpec": ".config",
    "TrainConfig": ".config",
    "load_config": ".config",
    "MultiTaskObjective": ".losses",
    "Trainer": ".trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BalanceReport", "ConfigError", "DataSpec", "MultiTaskObjective", "TrainConfig", "Trainer", "balance", "load_config"]
