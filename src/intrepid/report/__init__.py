"""intrepid.report: figures and self-contained HTML reports from typed results.

>>> from intrepid.report import write_report  # doctest: +SKIP
>>> write_report(evaluation, "report.html")  # doctest: +SKIP
"""

from intrepid.report._demo import DemoResult, demo_specs, run_demo
from intrepid.report._figures import distribution_figure, image_figure
from intrepid.report._html import render_html, write_report
from intrepid.report._invivo import invivo_figures, render_invivo_html, write_invivo_report

__all__ = [
    "DemoResult",
    "demo_specs",
    "distribution_figure",
    "image_figure",
    "invivo_figures",
    "render_html",
    "render_invivo_html",
    "run_demo",
    "write_invivo_report",
    "write_report",
]
