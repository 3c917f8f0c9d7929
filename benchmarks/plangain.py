"""Issue 20 item 3: what planning buys — a study `segsweep plan` set up against one with
today's defaults (`study create --no-plan`: 128 px, batch 8, filters 16, one pass over the
training images per epoch), on the phantoms, dsb2018 nuclei and BraTS 2013 FLAIR volumes, 3
seeds each.

Both arms are real `segsweep study create` / `study run --trials 1` commands, each study in its
own folder, with the pruner off. With one trial, each arm trains its own space's default
configuration (``search.default_first``). Both arms get the same budget of optimizer steps:
the planned study keeps its planned ``train.steps_per_epoch`` and gets the number of epochs
nearest to ``--steps``; the default study keeps one pass per epoch and gets the number of
epochs whose total comes nearest to the planned study's. The epochs are written into
``studies/NAME.toml`` after ``study create`` (the file's header says: edit, then run), since
the plan itself is made for the default 20 epochs and ``--set train.epochs`` would re-plan.

    python -m benchmarks.plangain run --save benchmarks/data/plangain.json   # trains (20-85 min)
    python -m benchmarks.plangain report benchmarks/data/plangain.json       # into RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from benchmarks.common import phantom
from benchmarks.plangain_section import ARM_NAMES, SETS, plangain_section, write_results
from benchmarks.signals import NUCLEI

__all__ = ["run_pair", "measure", "main"]

BRATS = NUCLEI.parent / "brats13_flair_6"
# The default arm trains the network today's default trial trained when issue 20 was filed
# (filters 16 of [16, 32]), so runs stay comparable: the default trial now takes the widest
# filters of its space, which would make a bare --no-plan study train 32.
ARMS = dict(zip(ARM_NAMES, [(), ("--no-plan", "--set", "space.base_filters=[16]")], strict=True))
# both arms: no pruning, and deterministic kernels, so a seed's result is the seed's and not the
# thread scheduler's (without them one phantom seed moved by 0.1 between runs)
COMMON = ("--set", 'search.pruner="none"', "--set", "train.deterministic=true")


def _segsweep(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "segsweep", *args], cwd=cwd, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    return done.stdout


def _settings(cwd: Path, name: str) -> dict:
    return tomllib.loads((cwd / "studies" / f"{name}.toml").read_text())


def _set_epochs(cwd: Path, name: str, epochs: int) -> None:
    path = cwd / "studies" / f"{name}.toml"
    text, n = re.subn(r"^epochs = \d+$", f"epochs = {epochs}", path.read_text(), flags=re.M)
    if n != 1:
        raise RuntimeError(f"{path}: expected one 'epochs = N' line, found {n}")
    path.write_text(text)


def _steps_per_epoch(cwd: Path, name: str) -> int:
    """The study's steps per epoch: its setting, or one pass over its training images."""
    train = _settings(cwd, name)["train"]
    if train["steps_per_epoch"]:
        return int(train["steps_per_epoch"])
    split = json.loads((cwd / "studies" / f"{name}.split.json").read_text())
    return math.ceil(len(split["train"]) / train["batch_size"])


def _create(cwd: Path, arm: str, data: Path, seed: int) -> int:
    cwd.mkdir(parents=True, exist_ok=True)
    _segsweep(cwd, "study", "create", arm, "--data", str(data), *ARMS[arm], *COMMON,
              "--set", f"search.seed={seed}")  # fmt: skip
    return _steps_per_epoch(cwd, arm)


def _network(params: dict, settings: dict) -> dict:
    """The trained base_filters and depth: a one-value setting is fixed, not in the params."""
    space = settings["space"]
    return {k: params.get(k, space[k][0]) for k in ("base_filters", "depth")}


def _run(cwd: Path, arm: str, epochs: int, steps: int) -> dict:
    _set_epochs(cwd, arm, epochs)
    started = time.time()
    _segsweep(cwd, "study", "run", arm, "--trials", "1", "--workers", "1")
    wall = time.time() - started
    status = json.loads(_segsweep(cwd, "study", "status", arm, "--json"))
    s = _settings(cwd, arm)
    best = status["best"] or {}
    return {
        "objective": status["objective"],
        "best": best.get("value"),
        "states": {k: v for k, v in status["states"].items() if v},
        "params": best.get("params", {}),
        "network": _network(best.get("params", {}), s),
        "image_size": s["data"]["image_size"],
        "intensity": s["data"]["intensity"],
        "batch": s["train"]["batch_size"],
        "epochs": epochs,
        "steps_per_epoch": steps,
        "steps": epochs * steps,
        "wall": wall,
    }


def run_pair(workdir: Path, dataset: str, data: Path, seed: int, target: int) -> dict:
    """One seed of one set: the planned and the default study at the same budget of steps."""
    base = workdir / f"{dataset}-{seed}"
    per_epoch = {arm: _create(base / arm, arm, data, seed) for arm in ARMS}
    planned_epochs = max(1, round(target / per_epoch["planned"]))
    budget = planned_epochs * per_epoch["planned"]
    default_epochs = max(1, round(budget / per_epoch["default"]))
    out = {"dataset": dataset, "seed": seed}
    for arm, epochs in (("planned", planned_epochs), ("default", default_epochs)):
        out[arm] = _run(base / arm, arm, epochs, per_epoch[arm])
        print(f"{dataset} seed {seed} {arm}: {out[arm]}", file=sys.stderr, flush=True)
    return out


def _data(dataset: str, workdir: Path) -> Path:
    if dataset == "phantom":  # the set `segsweep data synth` writes by default
        return phantom(workdir, n=200, size=128, seed=0)
    return {"nuclei": NUCLEI, "brats": BRATS}[dataset]


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def measure(
    workdir: Path, *, sets: list[str], seeds: list[int], target: int, until: float, save: Path
) -> dict:
    """Every pair, set by set; saved after each, and none started that would end past
    ``until`` (epoch seconds) judging by the set's previous pair (else 6 minutes)."""
    result = {"target_steps": target, "pairs": [], "skipped": [], "started": _now(),
              "deterministic": True}  # fmt: skip
    started = time.time()
    for dataset in sets:
        last = 360.0
        for seed in seeds:
            if time.time() + last > until:
                result["skipped"].append({"dataset": dataset, "seed": seed})
                continue
            pair_started = time.time()
            data = _data(dataset, workdir)
            result["pairs"].append(run_pair(workdir, dataset, data, seed, target))
            last = time.time() - pair_started
            result["seconds"] = time.time() - started
            save.write_text(json.dumps(result, indent=1))
    save.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.plangain", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train every pair, save the JSON")
    run.add_argument("--save", type=Path, required=True)
    run.add_argument("--steps", type=int, default=120, help="optimizer steps per study (about)")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    run.add_argument("--minutes", type=float, default=35, help="start no pair that would end later")
    run.add_argument("--workdir", type=Path, default=None, help="default: a new temp folder")
    report = sub.add_parser("report", help="write the section into benchmarks/RESULTS.md")
    report.add_argument("saved", type=Path)
    args = p.parse_args(argv)
    if args.command == "run":
        args.save.parent.mkdir(parents=True, exist_ok=True)
        until = time.time() + 60 * args.minutes
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="segsweep-plangain-"))
        result = measure(workdir, sets=args.sets, seeds=args.seeds, target=args.steps,
                         until=until, save=args.save)  # fmt: skip
    else:
        result = json.loads(args.saved.read_text())
        write_results(plangain_section(result))
    from benchmarks.report import console

    print(console([plangain_section(result)]))


if __name__ == "__main__":
    main()
