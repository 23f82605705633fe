"""intrepid.report: figures, self-contained HTML reports and their PDF, and the action-level verdicts.

>>> from intrepid.report import write_report, write_pdf  # doctest: +SKIP
>>> write_pdf(write_report(evaluation, "report.html"), "report.pdf")  # doctest: +SKIP
"""

from intrepid.report._demo import DemoResult, demo_specs, run_demo
from intrepid.report._figures import (
    DoseScale,
    comparison_figure,
    distribution_figure,
    dose_scale,
    field_window_mm,
    image_figure,
)
from intrepid.report._html import image_verdict, render_html, write_report
from intrepid.report._invivo import invivo_figures, render_invivo_html, write_invivo_report
from intrepid.report._pdf import find_chromium, write_pdf
from intrepid.report._verdict import DEFAULT_ACTION_LEVELS, ActionLevels, Verdict, judge

__all__ = [
    "DEFAULT_ACTION_LEVELS",
    "ActionLevels",
    "DemoResult",
    "DoseScale",
    "Verdict",
    "comparison_figure",
    "demo_specs",
    "distribution_figure",
    "dose_scale",
    "field_window_mm",
    "find_chromium",
    "image_figure",
    "image_verdict",
    "invivo_figures",
    "judge",
    "render_html",
    "render_invivo_html",
    "run_demo",
    "write_invivo_report",
    "write_pdf",
    "write_report",
]
