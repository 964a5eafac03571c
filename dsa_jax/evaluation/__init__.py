"""Evaluation: judges, the field's protocols, in-loop and end-of-run evaluators, reports and learning curves.

`evaluators` holds the plug-ins a config names; `report.evaluate_run` scores a run's selected
checkpoint on test; `curves` draws learning curves.
"""
