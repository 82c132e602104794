"""Batch evaluation (``mrirecon evaluate``): files x masks x accelerations x methods, resumable, shardable.

* :mod:`.grid`: the work items and their order; the method names.
* :mod:`.store`: the append-only results CSV that survives being killed; merging part files.
* :mod:`.report`: the summary over volumes, per-slice CSV and plots.
* :mod:`.runner`: :class:`EvalConfig` and :func:`run_evaluation` (one volume read once, coil maps
  shared by all methods of a mask, skipped cells reported, interrupted volumes resumed).
"""

from mrirecon.evaluation.grid import CLASSICAL, METHODS, SLICE_TUNED, TUNED, WorkItem, find_scans, make_grid
from mrirecon.evaluation.report import SummaryRow, plot_summary, summarize, summary_cells, summary_markdown
from mrirecon.evaluation.runner import LAMBDA_SWEEP, EvalConfig, EvalReport, check_scan, run_evaluation
from mrirecon.evaluation.store import COLUMNS, ResultsTable, merge_tables, part_files, part_path

__all__ = [
    "CLASSICAL",
    "COLUMNS",
    "LAMBDA_SWEEP",
    "METHODS",
    "SLICE_TUNED",
    "TUNED",
    "EvalConfig",
    "EvalReport",
    "ResultsTable",
    "SummaryRow",
    "WorkItem",
    "check_scan",
    "find_scans",
    "make_grid",
    "merge_tables",
    "part_files",
    "part_path",
    "plot_summary",
    "run_evaluation",
    "summarize",
    "summary_cells",
    "summary_markdown",
]
