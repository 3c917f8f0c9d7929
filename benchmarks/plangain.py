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

    python -m benchmarks.plangain run --save benchmarks/data/plangain.json   # trains (~35 min)
    python -m benchmarks.plangain report benchmarks/data/plangain.json       # into RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from benchmarks.common import Section, phantom
from benchmarks.signals import NUCLEI

__all__ = ["SETS", "run_pair", "measure", "plangain_section", "write_results", "main"]

HERE = Path(__file__).resolve().parent
BRATS = NUCLEI.parent / "brats13_flair_6"
SETS = ("phantom", "nuclei", "brats")
LABELS = {"phantom": "phantoms (128 px)", "nuclei": "dsb2018 nuclei (96 px)",
          "brats": "BraTS 2013 FLAIR (240 px slices)"}  # fmt: skip
# The default arm trains the network today's default trial trained when issue 20 was filed
# (filters 16 of [16, 32]), so runs stay comparable: the default trial now takes the widest
# filters of its space, which would make a bare --no-plan study train 32.
ARMS = {"planned": (), "default": ("--no-plan", "--set", "space.base_filters=[16]")}
TITLE = "10. Planned settings against today's defaults (same training steps)"
MARGIN = 0.03  # the target: ahead by at least this on two sets


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
    _segsweep(cwd, "study", "create", arm, "--data", str(data), *ARMS[arm],
              "--set", f"search.seed={seed}", "--set", 'search.pruner="none"')  # fmt: skip
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
    result = {"target_steps": target, "pairs": [], "skipped": [], "started": _now()}
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


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):+.3f} ± {sd:.3f}".lstrip("+")


def _arm_cells(pairs: list[dict], arm: str) -> list[str]:
    runs = [p[arm] for p in pairs]
    first = runs[0]
    trained = first.get("network", first["params"])
    net = f"{trained.get('base_filters')}/{trained.get('depth')}"
    return [
        f"{first['image_size']} px, filters/depth {net}, batch {first['batch']}",
        " / ".join(f"{r['epochs']}×{r['steps_per_epoch']}" for r in runs),
        " / ".join(f"{r['best']:.3f}" if r["best"] is not None else "failed" for r in runs),
        _mean_sd([r["best"] for r in runs if r["best"] is not None]),
        f"{statistics.mean(r['wall'] for r in runs):.0f} s",
    ]


def _gains(pairs: list[dict]) -> list[float]:
    return [
        p["planned"]["best"] - p["default"]["best"]
        for p in pairs
        if p["planned"]["best"] is not None and p["default"]["best"] is not None
    ]


def _verdict(gains: dict[str, list[float]]) -> bool | None:
    """Never behind on a set's mean, and ahead by MARGIN on two; None while too few sets
    were measured to tell."""
    means = {d: statistics.mean(g) for d, g in gains.items() if g}
    if any(m < 0 for m in means.values()):
        return False
    ahead = sum(m >= MARGIN for m in means.values())
    if ahead >= 2 and len(means) == len(SETS):
        return True
    return None if ahead + len(SETS) - len(means) >= 2 else False


def _cost_notes(pairs: list[dict]) -> list[str]:
    """What the same steps cost and showed each arm: images seen (steps × batch), wall time."""
    parts = []
    for dataset in SETS:
        runs = [p for p in pairs if p["dataset"] == dataset]
        if not runs:
            continue
        seen = {a: statistics.mean(p[a]["steps"] * p[a]["batch"] for p in runs) for a in ARMS}
        wall = statistics.mean(p["planned"]["wall"] / p["default"]["wall"] for p in runs)
        parts.append(
            f"{dataset}: {seen['planned']:.0f} against {seen['default']:.0f} images, "
            f"{wall:.2f}× the wall time"
        )
    if not parts:
        return []
    return ["Same steps, different work: the planned arm's training saw (steps × batch) "
            + "; ".join(parts) + " (planned against default, mean per run)."]  # fmt: skip


def plangain_section(result: dict) -> Section:
    """The section for RESULTS.md from the JSON ``measure`` saved."""
    rows, gains = [], {}
    for dataset in SETS:
        pairs = [p for p in result["pairs"] if p["dataset"] == dataset]
        if not pairs:
            rows.append([LABELS[dataset], "both", *["not measured"] * 5, "—"])
            continue
        gains[dataset] = _gains(pairs)
        objective = pairs[0]["planned"]["objective"]
        for arm in ARMS:
            gain = _mean_sd(gains[dataset]) if arm == "planned" else ""
            rows.append([f"{LABELS[dataset]}, {objective}", arm, *_arm_cells(pairs, arm), gain])
    headline = "; ".join(
        f"{d}: {statistics.mean(g):+.3f} (ahead in {sum(x > 0 for x in g)} of {len(g)} seeds)"
        for d, g in gains.items()
        if g
    )
    notes = [
        f"Budget: about {result['target_steps']} optimizer steps per study; each run's "
        "epochs × steps per epoch are listed per seed (the planned arm keeps its planned "
        "steps per epoch, the default arm one pass over its training images per epoch, with "
        "the number of epochs whose total comes nearest). Seeds are `search.seed` (split, "
        "sampler and weights); the two arms of a seed share the split.",
        "One trial per study (`study run --trials 1 --workers 1`, pruner off): trial 0 is each "
        "arm's default configuration of its own space (`search.default_first`: dice_ce, batch "
        "norm, Adam 1e-3 with poly decay, the widest filters of its space and its median "
        "depth; the default arm's space is pinned to filters 16), so this compares the planned "
        "resolution, network size, batch, steps and intensity rule, not the narrowed search.",
        "Best = the study's objective at its best epoch (`study status --json`): per-image hard "
        "Dice on the validation images for 2D sets, per-case Dice of the stacked validation "
        "volumes for BraTS. Wall = `study run` alone (process start, data load, training, "
        "validation every epoch, model logging), on the 2 shared CPU cores.",
    ]
    notes += _cost_notes(result["pairs"])
    notes += result.get("remarks", [])  # what was noticed about this run, kept with its data
    if "started" in result:
        notes.append(
            f"Run {result['started']}, {result.get('seconds', 0) / 60:.0f} minutes for all "
            "pairs (creates included), one study at a time, on cores shared with other jobs."
        )
    if result.get("skipped"):
        left = ", ".join(f"{s['dataset']} seed {s['seed']}" for s in result["skipped"])
        notes.append(f"Not measured (out of time): {left}.")
    return Section(
        key="plangain",
        title=TITLE,
        headline=f"planned − default best: {headline}" if headline else "not measured",
        target=f"never worse than the defaults on any set, ahead by ≥ {MARGIN} on two of three",
        met=_verdict(gains),
        columns=["data, objective", "arm", "settings", "epochs × steps per seed",
                 "best per seed", "mean ± sd", "wall per run", "planned − default"],
        rows=rows,
        notes=notes,
    )  # fmt: skip


def write_results(section: Section, results: Path = HERE / "RESULTS.md") -> None:
    """Put ``section`` into RESULTS.md: its row in the summary, its text before the
    analysis, each replacing the one a previous run wrote."""
    from benchmarks.report import verdict
    from benchmarks.section4 import section_markdown

    text = results.read_text()
    row = f"| {section.title} | {section.headline} | {section.target} | {verdict(section.met)} |"
    old_row = re.compile(rf"^\| {re.escape(section.title.split()[0])} .*$", re.M)
    if old_row.search(text):
        text = old_row.sub(lambda _: row, text, count=1)
    else:
        last = re.findall(r"^\| 9\. .*$", text, re.M)[0]
        text = text.replace(last, f"{last}\n{row}", 1)
    body = "\n".join(section_markdown(section))
    start = text.find(f"\n## {section.title.split()[0]} ")
    end = text.index("\n## Analysis")
    if start == -1:
        start = end
    text = text[:start] + "\n" + body + text[end:]
    results.write_text(text)


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
