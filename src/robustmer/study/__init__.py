"""Study stage: one command from data to the paper's tables and figures, resumable.

Public API
----------
run_study
    Synthesise or prepare data, train every system x seed, attack each model, report.
StudyProfile, STUDY_PROFILES, get_profile, shrunk
    What a study runs; ``quick`` (synthetic demo) and ``paper``.
"""

from robustmer.study.profiles import STUDY_PROFILES, StudyProfile, get_profile, shrunk
from robustmer.study.run import run_study

__all__ = ["STUDY_PROFILES", "StudyProfile", "get_profile", "run_study", "shrunk"]
