"""Data stage: the synthetic generator, the real-data loaders, the split and the cache.

Public API
----------
generate_synthetic
    Write a synthetic data set in the real data sets' on-disk formats (docs/paper.md §2).
read_ratings, read_midlevel, load_soundtracks
    Validated readers of Soundtracks Set 1 and the mid-level annotations.
paper_split
    The paper's train/validation/test split (docs/paper.md §4).
prepare
    Audio and annotations to a cache of normalised excerpts.
load_cache, write_cache, Cache
    The cache on disk and in memory.
"""

from robustmer.data.cache import CACHE_VERSION, Cache, load_cache, write_cache
from robustmer.data.loader import load_soundtracks, read_midlevel, read_ratings
from robustmer.data.prepare import prepare
from robustmer.data.split import paper_split
from robustmer.data.synth import generate_synthetic

__all__ = [
    "CACHE_VERSION",
    "Cache",
    "generate_synthetic",
    "load_cache",
    "load_soundtracks",
    "paper_split",
    "prepare",
    "read_midlevel",
    "read_ratings",
    "write_cache",
]
