"""robustmer: adversarial robustness of interpretable music emotion recognition models.

Reproduces and extends Hoedt, Flexer & Widmer, "Are Inherently Interpretable Models More
Robust? A Study in Music Emotion Recognition", SMC 2025 (arXiv 2508.03780).

Stages, data flowing one way (no module imports a later stage)::

    audio -> data -> models -> attacks -> training -> evaluation -> report -> study -> cli

Sub-packages are imported lazily; ``import robustmer`` is cheap.
"""

from robustmer.errors import RobustmerError

__version__ = "0.1.0"
__all__ = ["RobustmerError", "__version__"]
