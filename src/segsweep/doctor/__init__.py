"""``doctor``: a report on the data and the study settings before anything trains.

:func:`examine` reads every image/mask pair of ``cfg.data.dir`` once and returns a
:class:`Report`: facts (pairing, sizes, mask value sets, lesion fractions, bit depths, channels,
intensity ranges) and findings. Errors are what loading would refuse, all of them rather than
the first; warnings are settings the search space allows that are risky for this data, each with
its reason in one sentence. Nothing here imports TensorFlow, Keras, Optuna or MLflow.

>>> report = examine(Config().replace(**{"data.dir": "data/phantom"}))  # doctest: +SKIP
>>> report.exit_code  # 0 nothing wrong, 1 warnings, 2 errors  # doctest: +SKIP
1
"""

from __future__ import annotations

from segsweep.config import Config
from segsweep.data.source import objective_error
from segsweep.data.volumes import is_volume_dir
from segsweep.doctor._facts import facts
from segsweep.doctor._report import Finding, Report
from segsweep.doctor._risks import RULES
from segsweep.doctor._scan import Scan, scan
from segsweep.doctor._settings import (
    dropout_finding,
    image_size_errors,
    l2_at_init,
    l2_finding,
    l2_penalty_at_init,
)
from segsweep.doctor._volumes import scan_volumes

__all__ = ["Finding", "Report", "examine", "l2_penalty_at_init"]

_ORDER = {"error": 0, "warning": 1, "info": 2}


def _passed(found: Scan, errors: list[Finding]) -> list[Finding]:
    """The data checks that passed, as "ok" lines."""
    codes = {f.code for f in errors}
    ok = []
    if found.pairs and not codes & {"orphan_image", "orphan_mask", "stem_clash", "unreadable"}:
        msg = f"{found.pairs} pairs, every file readable and matched"
        ok.append(Finding("info", "pairs", msg))
    if found.samples and not codes & {"in_between_mask", "invalid_mask", "size_mismatch"}:
        msg = "every mask is binary or a label map, of its image's size"
        ok.append(Finding("info", "masks", msg))
    return ok


def examine(cfg: Config) -> Report:
    """Read ``cfg.data.dir`` and judge it and ``cfg``'s settings; raises nothing for bad data."""
    if is_volume_dir(cfg.data.dir):
        return _examine_volumes(cfg)
    found = scan(cfg)
    errors = [*found.errors, *image_size_errors(cfg)]
    if msg := objective_error(cfg):
        errors.append(Finding("error", "objective", msg))
    warnings = [f for rule in RULES for f in rule(cfg, found.samples)]
    findings = [*errors, *warnings, *dropout_finding(cfg), *l2_finding(cfg)]
    findings += _passed(found, errors)
    findings.sort(key=lambda f: _ORDER[f.level])  # stable: the order of the checks within a level
    report_facts = {"layout": "pictures", **facts(found), "l2_at_init": l2_at_init(cfg)}
    return Report(data=cfg.data.dir, facts=report_facts, findings=tuple(findings))


def _examine_volumes(cfg: Config) -> Report:
    """NIfTI volumes: the case checks and volume facts, then the settings' own findings."""
    volume_facts, errors = scan_volumes(cfg)
    errors += image_size_errors(cfg)
    findings = [*errors, *dropout_finding(cfg), *l2_finding(cfg)]
    if not errors:
        msg = f"{volume_facts['cases']} cases, every volume readable and matched to its label"
        findings.append(Finding("info", "volumes", msg))
    findings.sort(key=lambda f: _ORDER[f.level])
    report_facts = {**volume_facts, "l2_at_init": l2_at_init(cfg)}
    return Report(data=cfg.data.dir, facts=report_facts, findings=tuple(findings))
