"""Small components are removed where their size was chosen (the model's resolution), so the
served model, `segsweep predict` and the finalize test scoring keep the same components."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from segsweep.data.geometry import to_original
from segsweep.evaluation.metrics import label_lesions
from segsweep.finalize.champion import Champion, ChampionSettings, champion_mask


def settings(size: int, min_px: int, resize: str = "stretch") -> ChampionSettings:
    return ChampionSettings(
        image_size=size, channels=1, intensity="dtype", resize=resize, threshold=0.5, tta=False,
        min_component_px=min_px, trial=0, study="s",
    )  # fmt: skip


def served(prob: np.ndarray, s: ChampionSettings) -> np.ndarray:
    """What the registered pyfunc model returns for these probabilities: (N, S, S) in {0, 1}."""
    model = Champion()
    model.settings = s
    return model.masks_from(prob)


def test_a_blob_kept_at_the_model_resolution_is_kept_at_a_larger_size():
    # a 9-px blob at 64 px with min_component_px 8: kept. Scaled to 96 px it became 16 px,
    # under the scaled limit of 18, and vanished from the written mask
    prob = np.zeros((64, 64), np.float32)
    prob[10:13, 10:13] = 0.9
    prob[40:42, 40:42] = 0.9  # 4 px: removed everywhere
    s = settings(64, 8)
    assert served(prob[None], s)[0].sum() == 9
    big = champion_mask(prob, (96, 96), s) > 0
    assert label_lesions(big)[1] == 1 and big[15:19, 15:19].all() and not big[55:65, 55:65].any()


@pytest.mark.parametrize("resize", ["stretch", "pad"])
def test_served_predicted_and_scored_masks_keep_the_same_components(resize):
    rng = np.random.default_rng(5)
    s = settings(32, 6, resize)
    prob = rng.random((6, 32, 32)).astype(np.float32) ** 3  # speckle of every size
    prob = np.clip(prob * 1.8, 0, 1)
    kept = served(prob, s)
    for p, k in zip(prob, kept, strict=True):
        assert np.array_equal(champion_mask(p, (32, 32), s) > 0, k > 0)  # same size: identical
        near = ndimage.binary_dilation(k > 0, iterations=2).astype(np.float32)
        for size in ((48, 40), (20, 27)):
            written = champion_mask(p, size, s) > 0
            # nothing the served model removed comes back at another size: every written
            # pixel lies within 2 model pixels of a pixel the served model kept
            assert written.any()
            assert not (
                written & ~(to_original(near, size, resize=resize, threshold=0.0) > 0)
            ).any()
