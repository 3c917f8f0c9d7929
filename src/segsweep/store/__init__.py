"""Where a study is kept: the Optuna storage, the MLflow tracking store, crash recovery.

- :mod:`.storage`: open or create a study's Optuna storage (journal file, SQLite, PostgreSQL),
  its settings and train/validation/test assignment stored with it.
- :mod:`.summary`: a study read back as a person sees it (``study status --json``).
- :mod:`.tracking`: :class:`~segsweep.store.tracking.Tracker`, the one place that talks to MLflow.
- :mod:`.views`: the saved views ``mlflow ui`` opens on (the trials, finalize's folds).
- :mod:`.recovery`: trials and parent runs left RUNNING by a dead worker, found and closed.

May import: ``errors``, ``config``, ``backend``, ``data``, ``evaluation``. Nothing here trains.
"""
