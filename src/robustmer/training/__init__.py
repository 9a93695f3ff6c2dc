"""Training stage (docs/paper.md §1, §6): the five systems, their configuration and training."""

from robustmer.training.config import (
    MONITORS,
    PROFILES,
    SYSTEMS,
    SystemSpec,
    TrainConfig,
    get_system,
    make_config,
    resolve_device,
)
from robustmer.training.loop import (
    COUNTERS,
    METRICS_COLUMNS,
    Run,
    epoch_seed,
    is_adversarial_epoch,
    load_run,
    predict,
    train,
)

__all__ = [
    "COUNTERS",
    "METRICS_COLUMNS",
    "MONITORS",
    "PROFILES",
    "SYSTEMS",
    "Run",
    "SystemSpec",
    "TrainConfig",
    "epoch_seed",
    "get_system",
    "is_adversarial_epoch",
    "load_run",
    "make_config",
    "predict",
    "resolve_device",
    "train",
]
