"""What a researcher reads and uses after a search: ``explain`` (why a run went as it did, on
the MLflow run ``runs`` finds and reads back), ``study report`` (one HTML page of ``plots`` and
a summary), ``predict`` (masks for new images from a model, a run or the study's champion).

May import every layer below it; only the CLI imports these.
"""
