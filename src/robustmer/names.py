"""Domain names shared by every stage (docs/paper.md §1, §2)."""

EMOTIONS: tuple[str, ...] = (
    "valence",
    "energy",
    "tension",
    "anger",
    "fear",
    "happy",
    "sad",
    "tender",
)
"""The eight perceived-emotion ratings of Soundtracks Set 1, in the CSV's column order."""

MIDLEVEL_FEATURES: tuple[str, ...] = (
    "melodiousness",
    "articulation",
    "rhythm_complexity",
    "rhythm_stability",
    "dissonance",
    "tonal_stability",
    "minorness",
)
"""The seven mid-level perceptual features of Aljanaki & Soleymani (2018), in file order."""

PAPER_SEEDS: tuple[int, ...] = (6, 21, 42, 796, 950, 2025, 2324, 2451, 3100, 7192)
"""The ten training seeds of the paper."""

SYSTEM_NAMES: tuple[str, ...] = ("A2E", "A2B2E", "A2M2E", "aA2E", "aA2B2E")
"""The five systems of the study, in the paper's order."""

RATING_SCALE: float = 10.0
"""Ratings (1-9 scale) are divided by this for training (docs/paper.md §2)."""
