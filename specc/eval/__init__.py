"""``specc eval``: ask a model the held-out probes of a spec and score its free answers by the rules.

- :mod:`~specc.eval.probes`: the probes (a dataset's test split, or fresh ones planned and attacked);
- :mod:`~specc.eval.score`: one answer's score by the rule's checks and the quality gates, Wilson
  intervals, and the model's answers;
- :mod:`~specc.eval.report`: the typed result (``EVAL.json``), renderings, the baseline change;
- :mod:`~specc.eval.perplexity`: capability drift on the stdlib's ``pydoc_data.topics``;
- :mod:`~specc.eval.run`: the command's one function, :func:`run_eval`.

Nothing below ``eval`` imports it; it reuses ``ir.checks`` and ``synth.gates``, never a copy.
"""

from specc.eval.probes import EvalError, Probe
from specc.eval.report import EvalReport, ReportError, read_report
from specc.eval.run import EvalOptions, run_eval

__all__ = ["EvalError", "EvalOptions", "EvalReport", "Probe", "ReportError", "read_report", "run_eval"]
