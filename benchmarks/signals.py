"""Issue 10 item 2: which per-epoch signal tells early where a trial will end.

Trials of segsweep's default space (the network kept small: filters 4 or 8, depth 2 or 3, to fit
a CPU) are sampled at random and trained for every epoch, never pruned, through
:func:`segsweep.trial.train.fit` (the training a worker runs). Every epoch records the candidate
signals a pruner could be given; the trial's final value is what the study stores (the best
epoch's objective, ``KeepBest``'s choice). Then, for each signal at epochs 1, 2, 3 and 5:

- the Spearman rank correlation with the final value over the trials;
- whether the eventual best trial would survive a cut to the top third at that epoch (what
  successive halving with reduction factor 3 keeps).

Curves are saved as JSON (``--save``) so the pruner simulation (:mod:`benchmarks.prunesim`)
replays them without training again.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.common import Section, phantom

__all__ = ["Curve", "record", "signal", "SIGNALS", "AT", "signals_section", "load_curves"]

NUCLEI = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018_nuclei_96"
AT = (1, 2, 3, 5)
SIGNALS = (
    "val_dsc",
    "running best",
    "val_dsc_soft",
    "−val loss",
    "EMA val_dsc",
    "mean hard+soft",
    "best of mean hard+soft",  # what segsweep reports (callbacks.ReportToOptuna)
)
EMA_ALPHA = 0.5  # weight of the newest epoch


@dataclass
class Curve:
    dataset: str
    trial: int
    params: dict
    val_dsc: list[float] = field(default_factory=list)
    val_dsc_soft: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)  # the trial's own loss on validation
    val_pred_fg: list[float] = field(default_factory=list)
    final: float = math.nan  # the trial's value: its best epoch's objective
    seconds: float = 0.0


def signal(curve: Curve, name: str, epoch: int) -> float:
    """The value a pruner would see at ``epoch`` (1-based) under signal ``name``."""
    dsc = curve.val_dsc[:epoch]
    if name == "val_dsc":
        return dsc[-1]
    if name == "running best":
        return max(dsc)
    if name == "val_dsc_soft":
        return curve.val_dsc_soft[epoch - 1]
    if name == "−val loss":
        return -curve.val_loss[epoch - 1]
    if name == "mean hard+soft":
        return (dsc[-1] + curve.val_dsc_soft[epoch - 1]) / 2
    if name == "best of mean hard+soft":
        soft = curve.val_dsc_soft[:epoch]
        return max((h + s) / 2 for h, s in zip(dsc, soft, strict=True))
    if name == "EMA val_dsc":
        ema = dsc[0]
        for value in dsc[1:]:
            ema = EMA_ALPHA * value + (1 - EMA_ALPHA) * ema
        return ema
    raise ValueError(name)


def _recorder(curve: Curve, loss_fn, val_y: np.ndarray, holder: dict):
    import keras

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            curve.val_dsc.append(float(logs["val_dsc"]))
            curve.val_dsc_soft.append(float(logs["val_dsc_soft"]))
            curve.val_pred_fg.append(float(logs["val_pred_fg"]))
            prob = holder["val"].last_prob.astype("float32")
            value = keras.ops.convert_to_numpy(loss_fn(val_y, prob))
            curve.val_loss.append(float(value))

    return Record()


def config(data_dir: Path, *, size: int, epochs: int, batch: int, seed: int):
    from segsweep.config import Config

    return Config().replace(
        **{
            "data.dir": str(data_dir),
            "data.image_size": size,
            "data.test_fraction": 0.0,
            "train.epochs": epochs,
            "train.batch_size": batch,
            "search.seed": seed,
            "space.base_filters": [4, 8],
            "space.depth": [2, 3],
        }
    )


def dataset_dir(name: str, workdir: Path, size: int, phantoms: int = 120) -> Path:
    if name == "nuclei":
        return NUCLEI
    return phantom(workdir, n=phantoms, size=size)


def subset(split, n_train: int, n_val: int, seed: int):
    """The first ``n_train``/``n_val`` of a seeded shuffle, to keep a CPU run affordable."""
    from segsweep.trial.train import Split

    rng = np.random.default_rng(seed)
    tr = rng.permutation(len(split.train_x))[:n_train]
    va = rng.permutation(len(split.val_x))[:n_val]
    return Split(split.train_x[tr], split.train_y[tr], split.val_x[va], split.val_y[va])


def record(
    name: str,
    cfg,
    split,
    *,
    trials: int,
    seed: int,
    out: Path | None = None,
    log=print,
) -> list[Curve]:
    import keras
    import optuna

    from segsweep.config.space import suggest
    from segsweep.model.losses import get_loss
    from segsweep.trial.train import fit

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    curves: list[Curve] = []
    for _ in range(trials):
        trial = study.ask()
        params = suggest(trial, cfg.space)
        curve, holder = Curve(name, trial.number, params), {}
        loss_fn = get_loss(
            params["loss"],
            dice_w2=float(params.get("dice_w2", 0.7)),
            smooth=float(params["smooth"]),
            per_image=params["dice_reduction"] == "image",
        )
        start = time.time()
        result = fit(
            params,
            split,
            cfg,
            seed=1000 * seed + trial.number,
            callbacks=[_recorder(curve, loss_fn, split.val_y.astype("float32"), holder)],
            on_validation=lambda v, h=holder: h.__setitem__("val", v),
        )
        keras.backend.clear_session()
        curve.final, curve.seconds = float(result.best_value), time.time() - start
        study.tell(trial, curve.final)
        curves.append(curve)
        log(
            f"{name} trial {trial.number}: final {curve.final:.3f} in {curve.seconds:.0f} s "
            f"({params['loss']}, f{params['base_filters']} d{params['depth']})"
        )
        if out is not None:
            out.write_text(json.dumps([asdict(c) for c in curves], indent=1))
    return curves


def load_curves(path: Path) -> list[Curve]:
    return [Curve(**c) for c in json.loads(Path(path).read_text())]


def correlations(curves: list[Curve]) -> dict[tuple[str, int], float]:
    from scipy.stats import spearmanr

    finals = [c.final for c in curves]
    return {
        (name, e): float(spearmanr([signal(c, name, e) for c in curves], finals).statistic)
        for name in SIGNALS
        for e in AT
    }


def best_survives(curves: list[Curve], name: str, epoch: int, keep: float = 1 / 3) -> bool:
    """Would the trial with the best final value be in the top ``keep`` at ``epoch``?"""
    values = np.array([signal(c, name, epoch) for c in curves])
    best = int(np.argmax([c.final for c in curves]))
    rank = int((values > values[best]).sum())  # trials strictly ahead of it
    return rank < max(1, math.ceil(keep * len(curves)))


def signals_section(groups: dict[str, list[Curve]]) -> Section:
    rows = []
    for dataset, curves in groups.items():
        rho = correlations(curves)
        for name in SIGNALS:
            cells = [
                f"{rho[name, e]:+.2f}{'' if best_survives(curves, name, e) else ' ✗'}" for e in AT
            ]
            rows.append([dataset, str(len(curves)), name, *cells])
    winner = {
        d: max(SIGNALS, key=lambda s, c=c: sum(correlations(c)[s, e] for e in AT))
        for d, c in groups.items()
    }
    return Section(
        key="signals",
        title="4a. What the pruner should see (Spearman ρ with the final value)",
        headline=", ".join(f"{d}: {s}" for d, s in winner.items()) + " ranks best over epochs 1–5",
        target="the signal that ranks trials best early, comparable across trials",
        met=None,
        columns=["data", "trials", "signal", *[f"epoch {e}" for e in AT]],
        rows=rows,
        notes=[
            "Final value = the trial's value (its best epoch's val_dsc). ✗: the trial with the "
            "best final value would not be in the top third at that epoch under that signal.",
            f"EMA: weight {EMA_ALPHA} on the newest epoch. −val loss is each trial's own loss on "
            "the validation set: not comparable across losses (dice_ce, weighted_dice and "
            "focal_tversky have different scales), so it can rank only within one loss.",
        ],
    )


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["phantom", "nuclei"])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--train", type=int, default=0, help="training images kept (0 = all)")
    parser.add_argument("--val", type=int, default=0, help="validation images kept (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phantoms", type=int, default=120, help="phantom images generated")
    parser.add_argument("--save", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/segsweep-bench"))
    args = parser.parse_args()

    from segsweep.trial.workerdata import load_worker_data

    data_dir = dataset_dir(args.dataset, args.workdir, args.size, args.phantoms)
    cfg = config(data_dir, size=args.size, epochs=args.epochs, batch=args.batch, seed=args.seed)
    split = load_worker_data(cfg).split
    if args.train or args.val:
        split = subset(
            split, args.train or len(split.train_x), args.val or len(split.val_x), args.seed
        )
    print(f"{args.dataset}: {len(split.train_x)} train, {len(split.val_x)} val at {args.size} px")
    args.save.parent.mkdir(parents=True, exist_ok=True)
    record(args.dataset, cfg, split, trials=args.trials, seed=args.seed, out=args.save)


if __name__ == "__main__":
    main()
