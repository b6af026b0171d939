"""Reports of a run and comparisons of runs, rendered from ``summary.json`` data.

The files of one run (``outputs``: summary.json, junit.xml, report.md, report.html; each
renderer in its own module), the console table (``console``), the comparison of several runs
(``comparison`` is the model, ``compare_html`` and ``compare_md`` render it, ``compare`` writes
it), and baselines of known failures that gate a summary (``baseline``).

May import: ``harness.core`` (findings' statuses and levels) and ``harness.__version__``. A
report reads summaries, never a server: never ``harness.run``, ``harness.targets`` or
``harness.faces``.
"""
