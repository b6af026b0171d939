"""The ways in: the ``respcheck`` command line (``cli``) and the pytest plugin
(``pytest_plugin``, ``pytest --target ...``).

May import any part of the harness, and ``loadtests`` for ``respcheck load``. No other part
imports a face.
"""
