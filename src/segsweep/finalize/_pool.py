"""The cross-validated pool as finalize scores it: its masks at the model's resolution, folds
and cases, and the out-of-fold predictions each candidate's fold runs logged.

2D images are scored image by image, grouped into cases for the statistics; volume data are
stacked back into one row per case (its slices share one fold), scored in 3D with the voxel
spacing at the model's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient

from segsweep.config import Config
from segsweep.data.source import load_study_dataset, study_case_ids
from segsweep.errors import StudyError

__all__ = ["Pool", "load_pool", "out_of_fold"]


@dataclass(frozen=True)
class Pool:
    """The cross-validated images: their stems, masks at the model's resolution and folds."""

    stems: list[str]
    truth: np.ndarray
    fold: np.ndarray
    channels: int
    scoring: dict  # threshold, match_dilation, min_lesion_px; each image's case, or volumes'
    # voxel spacing
    cases: Any = None  # volume data: a segsweep.evaluation.cases.CaseIndex; a case is one row

    def arrange(self, prob: np.ndarray) -> Any:
        """Slice probabilities in ``stems`` order as they are scored: per image, or stacked
        into each case's volume."""
        return prob if self.cases is None else [prob[rows] for rows in self.cases.rows]


def load_pool(cfg: Config, stems: list[str], fold_map: dict[str, int]) -> Pool:
    ds = load_study_dataset(cfg, only=set(stems))
    index = {s: i for i, s in enumerate(ds.stems)}
    truth = np.stack([ds.masks[index[s]][..., 0] > 0 for s in stems])
    fold = np.array([fold_map[s] for s in stems])
    scoring = {
        "threshold": cfg.train.threshold,
        "match_dilation": cfg.metrics.match_dilation,
        "min_lesion_px": cfg.metrics.min_lesion_px,
    }
    if not ds.volumes:
        scoring["cases"] = study_case_ids(cfg.data, stems)
        return Pool(stems, truth, fold, ds.channels, scoring)
    from segsweep.evaluation.cases import case_index

    size = cfg.data.prepared_size
    cases = case_index(stems, ds.volumes, image_size=size, resize=ds.resize)
    truth = [truth[rows] for rows in cases.rows]  # a case's slices share one fold
    fold = np.array([fold[rows[0]] for rows in cases.rows])
    scoring["spacing"] = list(cases.spacing)
    return Pool(stems, truth, fold, ds.channels, scoring, cases)



def out_of_fold(client: MlflowClient, runs: list, stems: list[str], workdir: Path) -> tuple:
    """Out-of-fold probabilities (plain, TTA) in ``stems`` order, and the fold model files."""
    plain, tta, models = {}, {}, []
    for run in runs:
        folder = workdir / run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        oof = Path(client.download_artifacts(run.run_id, "oof/oof.npz", str(folder)))
        with np.load(oof) as z:
            for stem, p, q in zip(z["stems"], z["prob"], z["prob_tta"], strict=True):
                plain[str(stem)], tta[str(stem)] = p.astype(np.float32), q.astype(np.float32)
        models.append(Path(client.download_artifacts(run.run_id, "fold/model.keras", str(folder))))
    missing = [s for s in stems if s not in plain]
    if missing:
        raise StudyError(f"no out-of-fold prediction for {len(missing)} images, e.g. {missing[0]}")
    return np.stack([plain[s] for s in stems]), np.stack([tta[s] for s in stems]), models
