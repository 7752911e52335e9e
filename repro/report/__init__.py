"""The HTML report: ``build_report`` renders ``DIR/index.html`` and ``DIR/results.json`` from the store.

Figures come from each experiment family's ``Experiment.figures``; this package only lays them out.
"""

from repro.report.render import build_report

__all__ = ["build_report"]
