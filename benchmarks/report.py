"""Print the sections as a table and write them to ``RESULTS.md``."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Section

__all__ = ["verdict", "console", "markdown"]


def verdict(met: bool | None) -> str:
    return {True: "met", False: "not met", None: "—"}[met]


def _text_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return [line(columns), line(["-" * w for w in widths]), *map(line, rows)]


def console(sections: list[Section]) -> str:
    out: list[str] = []
    summary = [[s.title, s.headline, s.target, verdict(s.met)] for s in sections]
    out += _text_table(["benchmark", "figure", "target", ""], summary)
    for s in sections:
        out += ["", s.title, *_text_table(s.columns, s.rows)]
    return "\n".join(out)


def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    cells = lambda r: "| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"  # noqa: E731
    return [cells(columns), cells(["---"] * len(columns)), *map(cells, rows)]


def markdown(
    sections: list[Section],
    *,
    header: dict[str, dict[str, str]],
    command: str,
    seconds: float,
    analysis: list[str] = (),
) -> str:
    lines = ["# Benchmark results", ""]
    lines.append(f"Written by `{command}` in {seconds / 60:.1f} minutes.")
    lines.append("")
    for group, values in header.items():
        lines.append(f"- **{group}**: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    lines += ["", "## Summary", ""]
    summary = [[s.title, s.headline, s.target, verdict(s.met)] for s in sections]
    lines += _md_table(["benchmark", "figure", "target", "verdict"], summary)
    for s in sections:
        lines += [
            "",
            f"## {s.title}",
            "",
            f"**{s.headline}** — target {s.target}: {verdict(s.met)}.",
            "",
        ]
        lines += _md_table(s.columns, s.rows)
        lines += [""] + [f"- {note}" for note in s.notes]
    if analysis:
        lines += ["", "## Analysis", ""] + list(analysis)
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    path.write_text(text)
