"""MER models of the study (DESIGN.md §1, §5): A2E, A2B2E, A2M2E on a shared backbone."""

from robustmer.models.checkpoint import load_model, read_metadata, save_model
from robustmer.models.mer import (
    ARCHITECTURES,
    BACKBONE,
    MERModel,
    MEROutput,
    ModelConfig,
    build_model,
    count_parameters,
    load_state_dict_by_position,
)

__all__ = [
    "ARCHITECTURES",
    "BACKBONE",
    "MEROutput",
    "MERModel",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "load_model",
    "load_state_dict_by_position",
    "read_metadata",
    "save_model",
]
