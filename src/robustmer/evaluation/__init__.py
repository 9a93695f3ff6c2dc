"""Evaluation stage: attacking trained runs and logging per-clip results (docs/paper.md §7, §8).

- :func:`attack_run`: attack one run's split with any attack config, write
  ``RUN_DIR/attacks/<key>/clips.*`` and ``summary.json`` (:mod:`robustmer.records`);
  :func:`attack_runs`: several runs, optionally stacked into one batched attack.
- :func:`import_paper_logs`: the authors' published per-clip attack logs as runs of a study
  (:mod:`robustmer.evaluation.paper_logs`).
- :func:`paired_tests`: paired t-test and Wilcoxon signed-rank test on clip-level values.
"""

from robustmer.evaluation.attack_run import attack_run, attack_runs
from robustmer.evaluation.paper_logs import import_paper_logs, read_paper_log
from robustmer.evaluation.stats import paired_tests

__all__ = ["attack_run", "attack_runs", "import_paper_logs", "paired_tests", "read_paper_log"]
