"""What finalize keeps with the study: the settings it scores with, and every test record.

A study's numbers are only comparable under the settings that produced them. Threshold,
``min_lesion_px``, ``match_dilation``, ``mask_threshold`` and the objective are read from what
the study stored (at ``study create``, or at its first ``study run``), not from
``studies/NAME.toml`` as edited since; a difference is said, not silently applied. And a test
set scored twice keeps both scores: ``--rescore`` appends a record with its time and reason.
"""

from __future__ import annotations

import json
import time
from typing import Any

import optuna

from segsweep.config import Config
from segsweep.errors import StudyError
from segsweep.store.storage import (
    SCORING_ATTR,
    TEST_RECORDS_ATTR,
    scoring_of,
    study_config,
)

__all__ = ["append_test_record", "stored_scoring"]


def stored_scoring(study: optuna.Study, cfg: Config) -> tuple[Config, list[str]]:
    """``cfg`` with the study's stored scoring settings, and one line per setting the TOML now
    gives differently."""
    text = study.user_attrs.get(SCORING_ATTR)
    if text:
        stored = json.loads(text)
    else:  # a study made before segsweep stored them: the settings saved in the study
        try:
            stored = scoring_of(study_config(study))
        except StudyError:
            stored = scoring_of(cfg)
    now = scoring_of(cfg)
    differ = [
        f"{key} = {stored[key]!r} (studies/{study.study_name}.toml now says {now[key]!r})"
        for key in stored
        if key in now and now[key] != stored[key]
    ]
    return cfg.replace(**stored), differ


def _record(champion: dict[str, Any], reason: str, when: str) -> dict[str, Any]:
    test = champion["test"]
    keep = ("value", "ci95", "n_images", "n_cases", "metrics")
    return {
        "time": when,
        "reason": reason,
        "trial": champion["trial"],
        "model_uri": champion.get("model_uri"),
        **{k: test.get(k) for k in keep},
    }


def append_test_record(
    study: optuna.Study, champion: dict[str, Any], reason: str, *, earlier: str | None
) -> list[dict]:
    """Add this finalize's test score to the study's records and return them all. A study
    scored before records were kept gets its earlier champion's score (``earlier``, the stored
    champion before this finalize) recorded first."""
    records = json.loads(study.user_attrs.get(TEST_RECORDS_ATTR, "[]"))
    if not records and earlier and json.loads(earlier).get("test"):
        records.append(_record(json.loads(earlier), "scored before records were kept", ""))
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    records.append(_record(champion, reason or ("rescore" if records else "first scoring"), now))
    study.set_user_attr(TEST_RECORDS_ATTR, json.dumps(records))
    return records
