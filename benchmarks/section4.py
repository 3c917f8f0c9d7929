"""Section 4 of RESULTS.md from its saved parts: the search benchmark (4), the signals (4a), the
pruner replays (4b, 4c) and the time to a good model (4d), with the anytime curve as a PNG.

    python -m benchmarks.section4            # reads benchmarks/data/*.json, rewrites section 4

The parts run separately (each for minutes to an hour on this CPU; see benchmarks/README.md);
this only reads what they saved, so the section can be rebuilt without training again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.common import FULL, Section
from benchmarks.report import _md_table, verdict

__all__ = ["section_markdown", "main"]

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def section_markdown(s: Section, level: int = 2) -> list[str]:
    lines = ["#" * level + f" {s.title}", "", f"**{s.headline}** — target {s.target}: "]
    lines[-1] += f"{verdict(s.met)}." if s.met is not None else "—."
    lines += ["", *_md_table(s.columns, s.rows), ""]
    return lines + [f"- {note}" for note in s.notes] + [""]


def sections() -> list[Section]:
    from benchmarks import prunesim, search, search_section, signals, timetogood

    runs = search.load(sorted(DATA.glob("search-*.json")))
    search_section.anytime_png(runs, HERE / "search_anytime.png")
    out = [search_section.search_section(runs, FULL)]
    groups = {c[0].dataset: c for c in map(signals.load_curves, sorted(DATA.glob("signals-*")))}
    groups = {d: groups[d] for d in ("phantom", "nuclei") if d in groups}
    out += [
        signals.signals_section(groups),
        prunesim.prunesim_section(groups, orders=40),
        prunesim.budget_section(groups, budget=FULL.search_budget, searches=200),
    ]
    ttg = DATA / "timetogood.json"
    if ttg.exists():
        out.append(timetogood.ttg_section(json.loads(ttg.read_text())))
    return out


def main() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = HERE / "RESULTS.md"
    text = results.read_text()
    parts = sections()
    body = []
    for i, s in enumerate(parts):
        body += section_markdown(s)
        if i == 0:
            body += ["![best val_dsc after every tenth of the budget](search_anytime.png)", ""]
    # replace everything from "## 4." up to "## 5." with the new sections
    start, end = text.index("\n## 4."), text.index("\n## 5.")
    text = text[:start] + "\n" + "\n".join(body) + text[end:]
    for s in (parts[0], parts[-1]):
        row = f"| {s.title} | {s.headline} | {s.target} | {verdict(s.met)} |"
        pattern = re.compile(rf"^\| {re.escape(s.title.split()[0])} .*$", re.M)
        text = pattern.sub(row, text, count=1) if pattern.search(text) else text
        if s.title not in text.split("## Summary")[1].split("\n## ")[0]:
            text = text.replace("| 5. Inference", f"{row}\n| 5. Inference", 1)
    results.write_text(text)
    print(f"wrote section 4 ({len(parts)} parts) into {results}")


if __name__ == "__main__":
    main()
