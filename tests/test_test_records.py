"""A test record is never lost, and finalize scores with the settings the study stored."""

from __future__ import annotations

import json

import optuna

from segsweep.config import Config
from segsweep.finalize._record import append_test_record, stored_scoring
from segsweep.store.storage import SCORING_ATTR, create_study
from segsweep.store.summary import summary


def _study(tmp_path, cfg: Config) -> optuna.Study:
    return create_study(cfg, f"sqlite:///{tmp_path / 's.db'}", exist_ok=False)


def _champion(value: float) -> dict:
    test = {"value": value, "ci95": [value - 0.1, value + 0.1], "n_images": 8, "n_cases": 4}
    return {"trial": 3, "model_uri": "models:/s/1", "test": {**test, "metrics": {}}}


def test_finalize_scores_with_the_stored_settings_and_says_what_the_toml_changed(tmp_path):
    cfg = Config().replace(**{"study.name": "s", "metrics.min_lesion_px": 4})
    study = _study(tmp_path, cfg)
    assert json.loads(study.user_attrs[SCORING_ATTR])["metrics.min_lesion_px"] == 4
    edited = cfg.replace(**{"metrics.min_lesion_px": 9, "train.threshold": 0.3})
    used, differ = stored_scoring(study, edited)
    assert used.metrics.min_lesion_px == 4 and used.train.threshold == 0.5
    assert len(differ) == 2 and any("min_lesion_px = 4" in d and "9" in d for d in differ)
    assert stored_scoring(study, cfg) == (cfg, [])


def test_a_rescore_appends_a_record_beside_the_first(tmp_path):
    study = _study(tmp_path, Config().replace(**{"study.name": "s"}))
    append_test_record(study, _champion(0.71), "", earlier=None)
    records = append_test_record(study, _champion(0.74), "new fold count", earlier=None)
    assert [(r["value"], r["reason"]) for r in records] == [
        (0.71, "first scoring"),
        (0.74, "new fold count"),
    ]
    assert all(r["time"] and r["n_cases"] == 4 for r in records)
    assert summary(study)["test_records"] == records


def test_a_study_scored_before_records_were_kept_keeps_its_first_score(tmp_path):
    study = _study(tmp_path, Config().replace(**{"study.name": "s"}))
    earlier = json.dumps(_champion(0.69))
    records = append_test_record(study, _champion(0.74), "rescore", earlier=earlier)
    assert [r["value"] for r in records] == [0.69, 0.74]
