"""Section 10 of RESULTS.md from the JSON `python -m benchmarks.plangain run` saved: the table of
planned against default studies per set and seed, the verdict against issue 20's target, and
the notes that say what the numbers are (`python -m benchmarks.plangain report FILE`)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from benchmarks.common import Section

__all__ = ["ARM_NAMES", "SETS", "plangain_section", "write_results"]

HERE = Path(__file__).resolve().parent
SETS = ("phantom", "nuclei", "brats")
ARM_NAMES = ("planned", "default")
LABELS = {"phantom": "phantoms (128 px)", "nuclei": "dsb2018 nuclei (96 px)",
          "brats": "BraTS 2013 FLAIR (240 px slices)"}  # fmt: skip
TITLE = "10. Planned settings against today's defaults (same training steps)"
MARGIN = 0.03  # the target: ahead by at least this on two sets


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
        seen = {a: statistics.mean(p[a]["steps"] * p[a]["batch"] for p in runs) for a in ARM_NAMES}
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
        for arm in ARM_NAMES:
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
    if result.get("deterministic"):
        notes.append(
            "Both arms train with `train.deterministic` (section 11): rerunning a seed gives "
            "the same value to the bit, so the spread in the table is the seeds' (split and "
            "initial weights), not the thread scheduler's."
        )
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
        last = re.findall(r"^\| \d+\. .*$", text, re.M)[-1]  # after the last numbered row
        text = text.replace(last, f"{last}\n{row}", 1)
    body = "\n".join(section_markdown(section))
    start = text.find(f"\n## {section.title.split()[0]} ")
    end = text.index("\n## Analysis")
    if start == -1:
        start = end
    else:  # up to the next section (a later numbered one, or the analysis)
        end = text.index("\n## ", start + 1)
    text = text[:start] + "\n" + body + text[end:]
    results.write_text(text)
