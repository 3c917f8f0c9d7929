"""What a researcher reads and uses after a search: ``explain`` (why a run went as it did),
``study report`` (one HTML page), ``runs`` (which MLflow run a question is about), ``predict`` (masks for new images from a model, a run or the
study's champion).

May import every layer below it; only the CLI imports these.
"""
