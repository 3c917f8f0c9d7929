"""What ``study finalize`` hands back: the ``--json`` document, its MLflow record, its text."""

from __future__ import annotations

import json
from typing import Any

from segsweep.evaluation.sets import set_metrics
from segsweep.store.tracking import Tracker

__all__ = ["document", "log_result", "render"]


def document(
    study, objective, champion, candidates, compared, why, use_tta, with_tta, min_px, by_size,
    final, test, model_uri, version, *, margin,
) -> dict[str, Any]:  # fmt: skip
    cv = champion.score
    test_doc = None
    if test is not None:
        test_doc = {
            "value": test.value,
            "ci95": list(test.ci95),
            "n_images": test.n_images,
            "n_cases": test.n_cases,
            "metrics": {f"test_{k}": v for k, v in test.metrics.items()},
            "ensemble_value": test.ensemble_value,
            "single_fold_values": list(test.single_fold_values),
        }
    return {
        "study": study.study_name,
        "objective": objective,
        "champion": {
            "trial": champion.trial,
            "params": champion.params,
            "search_value": champion.search_value,
            "why": why,
            "cv": {
                "mean": cv.mean,
                "sd": cv.sd,
                "folds": list(cv.folds),
                "n_images": len(cv.counts),
                "n_cases": cv.counts.n_cases,
            },
            "cv_final": {"mean": final.mean, "sd": final.sd, "folds": list(final.folds)},
            "tta": use_tta,
            "tta_cv_mean": with_tta.mean,
            "min_component_px": min_px,
            "postprocessing_cv_means": {str(k): v for k, v in by_size.items()},
            "test": test_doc,
            "model_uri": model_uri,
            "model_version": version,
        },
        "candidates": [
            {
                "trial": c.trial,
                "search_value": c.search_value,
                "cv_mean": c.score.mean,
                "cv_sd": c.score.sd,
                "flops": c.flops,
                **_against_leader(compared.get(c.trial), margin),
            }
            for c in candidates
        ],
        "margin": margin,
    }


def _against_leader(comparison: Any, margin: float) -> dict[str, Any]:
    """A candidate's difference to the CV leader (None for the leader itself)."""
    if comparison is None:
        return {"difference": None, "difference_ci95": None, "non_inferior": None}
    return {
        "difference": comparison.difference,
        "difference_ci95": [comparison.low, comparison.high],
        "non_inferior": comparison.low > -margin,
    }


def log_result(tracker: Tracker, parent: str, doc: dict, final: Any) -> None:
    champ = doc["champion"]
    values = {
        "cv_mean": champ["cv_final"]["mean"],
        "cv_sd": champ["cv_final"]["sd"],
        # out-of-fold masks are scored at the model's resolution, test masks at each image's
        # own: the two HD95 are in different pixels, and their names say which
        **{f"cv_{_unit(k)}": v for k, v in set_metrics(final.counts).items()},
    }
    if champ["test"] is not None:
        values |= champ["test"]["metrics"]
        values |= {
            "test_ci95_low": champ["test"]["ci95"][0],
            "test_ci95_high": champ["test"]["ci95"][1],
        }
    tracker.log_metrics(parent, values, step=0)
    tracker.set_tags(parent, {"champion_trial": champ["trial"], "model_uri": champ["model_uri"]})
    tracker.log_text(parent, json.dumps(doc, indent=2), "finalize.json")


def _unit(metric: str) -> str:
    return "hd95_model_px" if metric == "hd95" else metric


def render(doc: dict[str, Any]) -> str:
    """The text ``study finalize`` prints."""
    c, obj = doc["champion"], doc["objective"]
    lines = [f"study '{doc['study']}' finalized on {obj}", "", "candidates (cross-validation):"]
    for cand in doc["candidates"]:
        d, ci = cand["difference"], cand["difference_ci95"]
        vs = (
            "the CV leader"
            if d is None
            else f"{d:+.4f} against the CV leader, 95 % CI over cases {ci[0]:+.4f} to "
            f"{ci[1]:+.4f}, margin {doc['margin']:g}"
        )
        lines.append(
            f"  trial {cand['trial']}: search {cand['search_value']:.4f}, CV "
            f"{cand['cv_mean']:.4f} ± {cand['cv_sd']:.4f}, {_flops(cand['flops'])} ({vs})"
        )
    lines += ["", f"champion: trial {c['trial']} — {c['why']}"]
    tta = "kept" if c["tta"] else "not kept"
    by_size = c["postprocessing_cv_means"]
    post = (
        f"removing predicted components < {c['min_component_px']} px kept (CV "
        f"{by_size['0']:.4f} -> {by_size[str(c['min_component_px'])]:.4f})"
        if c["min_component_px"]
        else "removing small components not kept: no size raised the CV mean"
    )
    lines.append(f"  flip TTA {tta} (CV {c['cv']['mean']:.4f} -> {c['tta_cv_mean']:.4f}); {post}")
    lines.append(
        f"  search value {c['search_value']:.4f} -> CV {c['cv_final']['mean']:.4f} ± "
        f"{c['cv_final']['sd']:.4f}"
        + (
            f" -> test {c['test']['value']:.4f} (95 % CI {c['test']['ci95'][0]:.4f}–"
            f"{c['test']['ci95'][1]:.4f} over {c['test']['n_cases']} cases, "
            f"{c['test']['n_images']} "
            f"{'slices' if 'test_case_dsc' in c['test']['metrics'] else 'images'})"
            if c["test"]
            else " (no test set: data.test_fraction = 0, or the study was created before segsweep"
            " kept one)"
        )
    )
    if c["test"]:
        t = c["test"]
        gap = c["search_value"] - t["value"]
        side = (
            f"{abs(gap):.4f} above" if gap > 0 else f"{abs(gap):.4f} below" if gap else "equal to"
        )
        lines.append(
            f"  optimism: the search's own value, chosen twice on the validation set, is {side} "
            "the test value, which no selection touched"
        )
        singles = t["single_fold_values"]
        alone = sum(singles) / len(singles)
        lines.append(
            f"  ensemble on test: {t['ensemble_value']:.4f} against {alone:.4f} for one fold "
            f"model alone (mean of {len(singles)}), before TTA and post-processing"
        )
    lines.append(f"  model: {c['model_uri']} (version {c['model_version']})")
    lines += [
        f"  scored with the study's stored {d}" for d in doc.get("scoring_differs_from_toml", [])
    ]
    records = doc.get("test_records", [])
    if len(records) > 1:
        lines.append(
            f"  the test set has now been scored {len(records)} times; every record is kept "
            "(`study status --json`, test_records): "
            + "; ".join(f"{r['value']:.4f} ({r['reason']})" for r in records)
        )
    return "\n".join(lines)


def _flops(n: float) -> str:
    return f"{n / 1e9:.2f} GFLOP" if n >= 1e8 else f"{n / 1e6:.1f} MFLOP"
