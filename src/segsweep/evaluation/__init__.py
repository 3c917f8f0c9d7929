"""How good a prediction is, and what went wrong: numpy scores and readings of a training run.

- :mod:`.metrics`: per-batch pixel Dice, IoU, lesion-by-lesion matching, HD95 (numpy, scipy).
- :mod:`.sets`: a whole set of predictions at original sizes reduced to counts, pooled and
  per-image values, the bootstrap interval.
- :mod:`.diagnose`: rules that read a run's epochs (collapse, loss above 1, flat Dice, ...).
- :mod:`.overlay`: the pictures of image, truth and prediction logged with every trial.

May import: ``errors``, ``config``, ``data``, ``model``. Never Optuna or MLflow.
"""
