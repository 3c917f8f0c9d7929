"""``python -m benchmarks [--quick] [--only NAME ...] [--out PATH]``: run, print, write results."""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import FULL, QUICK, Section, Sizes, machine, versions
from benchmarks.report import console, markdown

NAMES = (
    "throughput", "efficiency", "overhead", "search", "inference", "gpu", "lesion_cost",
    "backends",
)  # fmt: skip
HERE = Path(__file__).resolve().parent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that all runs")
    p.add_argument(
        "--only",
        nargs="+",
        choices=NAMES,
        default=list(NAMES),
        metavar="NAME",
        help=f"some of: {', '.join(NAMES)}",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the results (default benchmarks/RESULTS.md; "
        "--quick writes nothing unless given)",
    )
    return p


def _steps(names: list[str], sizes: Sizes, workdir: Path):
    """(label, function returning its sections) for every benchmark asked for, in order."""
    from benchmarks import backends, gpu, inference, lesion_cost, overhead, search, throughput
    from benchmarks.search_section import search_section

    def training() -> list[Section]:
        run = throughput.measure(sizes, workdir)
        return [
            *([throughput.throughput_section(run)] if "throughput" in names else []),
            *([throughput.efficiency_section(run)] if "efficiency" in names else []),
        ]

    steps = {
        "training lanes (1, 2)": ({"throughput", "efficiency"}, training),
        "per-trial overhead (3)": (
            {"overhead"},
            lambda: [overhead.overhead_section(overhead.measure(sizes, workdir), sizes)],
        ),
        "search efficiency (4)": (
            {"search"},
            lambda: [search_section(search.measure(sizes, workdir), sizes)],
        ),
        "inference (5)": (
            {"inference"},
            lambda: [inference.inference_section(inference.measure(sizes, workdir), sizes)],
        ),
        "GPU (6)": ({"gpu"}, lambda: [gpu.gpu_section(sizes, workdir)]),
        "lesion-metric cost (7)": (
            {"lesion_cost"},
            lambda: [lesion_cost.lesion_cost_section(lesion_cost.measure(sizes, workdir))],
        ),
        "Keras backends (8)": (
            {"backends"},
            lambda: [backends.backends_section(backends.measure(sizes, workdir))],
        ),
    }
    return [(label, fn) for label, (keys, fn) in steps.items() if keys & set(names)]


def _write(out: Path, sections: list[Section], command: str, seconds: float, done: bool) -> None:
    header = {
        "machine": machine(),
        "date": {"run": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")},
        "versions": versions(),
    }
    text = markdown(sections, header=header, command=command, seconds=seconds)
    if not done:
        text = text.replace("\n## Summary", "\n**Partial: the run is still going.**\n\n## Summary")
    out.write_text(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    command = (
        "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + (f" --only {' '.join(args.only)}" if set(args.only) != set(NAMES) else "")
    )
    out = args.out or (None if args.quick else HERE / "RESULTS.md")
    start = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="segsweep-bench-"))
    sections: list[Section] = []
    try:
        for label, step in _steps(args.only, sizes, workdir):
            print(f"[{(time.time() - start) / 60:5.1f} min] {label} ...", file=sys.stderr)
            sections += step()
            if out is not None:  # each finished benchmark is kept even if a later one fails
                _write(out, sections, command, time.time() - start, done=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.time() - start
    print(console(sections))
    print(f"\n{command}: {seconds / 60:.1f} minutes")
    if out is not None:
        _write(out, sections, command, seconds, done=True)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
