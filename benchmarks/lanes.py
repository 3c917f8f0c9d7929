"""Start lanes (:mod:`benchmarks.lane`) and hand out their epochs in turn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Lane", "start_lane", "interleave"]


@dataclass
class Lane:
    name: str
    process: subprocess.Popen
    log: Path

    def ask(self, op: str, **args: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            tail = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"lane {self.name} died; its log ends:\n{tail}")
        return json.loads(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write('{"op": "stop"}\n')
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_lane(name: str, spec: dict[str, Any], *, env: dict[str, str], workdir: Path) -> Lane:
    """Start one lane process and wait until it has loaded its data."""
    log = workdir / f"lane-{name}.log"
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.lane", json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        env=full_env,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    lane = Lane(name, process, log)
    lane._read()  # {"ready": true}
    return lane


def interleave(lanes: list[Lane], rounds: int, *, op: str = "epoch") -> dict[str, list[dict]]:
    """``rounds`` epochs of every lane, one lane at a time, the order rotated every round."""
    results: dict[str, list[dict]] = {lane.name: [] for lane in lanes}
    for r in range(rounds):
        for lane in lanes[r % len(lanes) :] + lanes[: r % len(lanes)]:
            results[lane.name].append(lane.ask(op))
    return results
