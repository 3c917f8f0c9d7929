"""One trial inside a worker process, from suggested parameters to a told Optuna trial.

- :mod:`.workerdata`: the data a worker loads once and every trial reuses.
- :mod:`.train`: one Keras fit; :mod:`.validation`: the whole-set validation metrics every
  epoch and the best epoch kept.
- :mod:`.callbacks`: reporting to Optuna (pruning) and logging to MLflow each epoch.
- :mod:`.lifecycle`: what every trial run does around its training (run start and finish,
  parameters, out-of-memory as a failed trial).
- :mod:`.objective`: a search trial; :mod:`.fold`: a cross-validation fold of ``finalize``.

May import every layer below it (``config`` to ``store``); never the study, finalize, results
or CLI layers above.
"""
