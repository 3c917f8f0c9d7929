"""The search a researcher writes from Optuna's documentation (optuna-examples,
``keras/keras_integration.py``): one process, ``model.fit`` on arrays with Optuna's
``KerasPruningCallback`` and the median pruner, ``study.optimize`` until a timeout.

It trains segsweep's UNet++ builder, losses and search space on the train/val split of a
segsweep study, so that :mod:`benchmarks.timetogood` compares the machinery alone. The one
addition to the documented script is a callback that computes segsweep's per-image hard Dice
(``val_dsc``) each epoch: the example monitors a Keras metric, and Keras has no per-image Dice.
Each epoch's wall time and ``val_dsc`` are written to ``--out`` as JSON lines.

    python -m benchmarks.plain_optuna STUDY_DIR NAME --timeout 600 --out times.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

START = time.time()  # before the imports, as `segsweep study run` is timed from its launch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cwd", type=Path, help="where studies/NAME.toml lies")
    parser.add_argument("name")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import keras
    import optuna
    from optuna_integration import KerasPruningCallback

    from segsweep.config import load_config
    from segsweep.config.space import suggest
    from segsweep.evaluation.metrics import segmentation_metrics
    from segsweep.model.losses import get_loss
    from segsweep.model.unetpp import inference_model
    from segsweep.store.storage import load_study, storage_url, study_assignment
    from segsweep.trial.train import build_model, make_optimizer
    from segsweep.trial.workerdata import load_worker_data

    out = args.out.resolve().open("w")
    os.chdir(args.cwd)  # the study's paths are relative to where it was created
    cfg = load_config(Path("studies") / f"{args.name}.toml")
    assignment = study_assignment(load_study(cfg.study.name, storage_url(cfg)))
    split = load_worker_data(cfg, assignment).split

    class ValDsc(keras.callbacks.Callback):
        def __init__(self, net, trial_number):
            super().__init__()
            self.net, self.trial_number = net, trial_number

        def on_epoch_end(self, epoch, logs=None):
            prob = self.net.predict(split.val_x, batch_size=32, verbose=0)
            logs["val_dsc"] = segmentation_metrics(split.val_y, prob)["dsc"]
            row = {"t": time.time() - START, "trial": self.trial_number, "epoch": epoch + 1}
            out.write(json.dumps(row | {"val_dsc": float(logs["val_dsc"])}) + "\n")
            out.flush()

    def objective(trial):
        keras.backend.clear_session()
        params = suggest(trial, cfg.space)
        net = build_model(
            params, in_channels=split.train_x.shape[-1], image_size=cfg.data.image_size
        )
        steps = -(-len(split.train_x) // cfg.train.batch_size) * cfg.train.epochs
        loss = get_loss(
            params["loss"],
            dice_w2=float(params.get("dice_w2", 0.7)),
            smooth=float(params["smooth"]),
            per_image=params["dice_reduction"] == "image",
        )
        net.compile(optimizer=make_optimizer(params, total_steps=steps), loss=loss)
        heads = len(net.outputs)  # deep supervision: one target per head
        history = net.fit(
            split.train_x,
            split.train_y if heads == 1 else [split.train_y] * heads,
            batch_size=cfg.train.batch_size,
            epochs=cfg.train.epochs,
            callbacks=[
                ValDsc(inference_model(net), trial.number),
                KerasPruningCallback(trial, "val_dsc"),
            ],
            verbose=0,
        )
        return history.history["val_dsc"][-1]  # the example returns the last epoch's score

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, timeout=args.timeout)
    out.close()


if __name__ == "__main__":
    main()
