"""The study report (docs/paper.md §8): Table 1, Figures 3 and 4, paired tests, cost, provenance.

``build_report(study_dir)`` reads every finished run of ``STUDY/runs/`` and writes
``STUDY/report/`` (report.md, a self-contained report.html, figures, summary.json and tidy
Parquet/CSV tables). The table functions are pure and exposed for testing and reuse.
"""

from robustmer.report.build import StudyData, build_report, load_study
from robustmer.report.tables import (
    PAPER_TABLE1,
    cost_ratios,
    cost_table,
    delta_mae_table,
    significance_tests,
    system_order,
    table1,
)

__all__ = [
    "PAPER_TABLE1",
    "StudyData",
    "build_report",
    "cost_ratios",
    "cost_table",
    "delta_mae_table",
    "load_study",
    "significance_tests",
    "system_order",
    "table1",
]
