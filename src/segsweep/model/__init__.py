"""The network and what it is trained against: UNet++ (:mod:`.unetpp`) and the losses
(:mod:`.losses`).

Keras only. May import: ``errors``, ``config``. Never Optuna, MLflow or the data layer: a model
is built from settings and trained elsewhere.
"""
