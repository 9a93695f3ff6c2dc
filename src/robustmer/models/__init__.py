"""MER models of the study (docs/paper.md §1, §5): A2E, A2B2E, A2M2E on a shared backbone,
and :class:`WaveformModel`, which feeds them audio."""

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
from robustmer.models.waveform import (
    AudioPrediction,
    WaveformModel,
    excerpt_samples,
    predict_audio,
    predict_file,
    window_starts,
)

__all__ = [
    "ARCHITECTURES",
    "AudioPrediction",
    "BACKBONE",
    "MEROutput",
    "MERModel",
    "ModelConfig",
    "WaveformModel",
    "build_model",
    "count_parameters",
    "excerpt_samples",
    "load_model",
    "load_state_dict_by_position",
    "predict_audio",
    "predict_file",
    "read_metadata",
    "save_model",
    "window_starts",
]
