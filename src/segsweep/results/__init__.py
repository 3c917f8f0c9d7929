"""What a researcher reads and uses after a search: ``explain`` (why a run went as it did),
``study report`` (one HTML page), ``predict`` (masks for new images from a model, a run or the
study's champion).

May import every layer below it; only the CLI imports these.
"""
