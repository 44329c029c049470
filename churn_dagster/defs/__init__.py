"""The defs folder of the dg project layout (``[tool.dg]`` in pyproject.toml).

The code location's own assets are built in Python from the settings (:mod:`churn_dagster.definitions`); this
folder holds what is declared in YAML instead: a ``defs.yaml`` per instance of a component, loaded by
``dagster.ComponentTree`` and merged into the same ``Definitions``.
"""
