"""Each planning rule on fingerprints built here: tiny and huge images, tiny and huge lesions,
anisotropic spacing, CT and MRI channel names, a batch ladder that runs out of memory."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from segsweep.config import Config, all_keys
from segsweep.plan import (
    Budget,
    ChannelStats,
    Device,
    Fingerprint,
    Ladder,
    Thresholds,
    apply_plan,
    climb,
    make_plan,
)
from segsweep.plan.choices import intensity_rule, l2_rule, loss_rule, oversample_rule
from segsweep.plan.geometry import deepest, depth_rule, resize_rule, working_resolution
from segsweep.plan.ladder import load_ladder, out_of_memory, save_ladder
from segsweep.plan.training import batch_rule, filters_rule, steps_rule

TH = Thresholds()
CPU = Device("CPU", 16_000, gpu=False)
ROOMY = Budget(memory_mb=8_000, gflops=40, trial_seconds=1800, device=CPU)


def fp(
    shape=(128, 128),
    n=100,
    lesion=(10, 10),
    per_image=1,
    lesion_free=0.2,
    spacing=(1.0, 1.0),
    names=(),
    dtype="uint8",
    high=255.0,
) -> Fingerprint:
    """``n`` images of ``shape``; every image but the lesion-free share holds ``per_image``
    lesions of extent ``lesion`` (rows, columns)."""
    bearing = n - round(lesion_free * n)
    owner = np.repeat(np.arange(bearing), per_image)
    extents = np.tile(np.asarray(lesion), (len(owner), 1))
    areas = extents.prod(axis=1)
    fraction = np.zeros(n)
    fraction[:bearing] = per_image * areas[0] / (shape[0] * shape[1])
    channels = tuple(
        ChannelStats(name, 100.0, 20.0, 0.0, high, 0.0, high) for name in (names or ("",))
    )
    return Fingerprint(
        shapes=np.tile(np.asarray(shape), (n, 1)),
        lesion_extents=extents,
        lesion_areas=areas,
        lesion_image=owner,
        lesion_fraction=fraction,
        channels=channels,
        dtype=dtype,
        spacing=spacing,
    )


def resolution(f: Fingerprint, budget: Budget = ROOMY, resize: str = "stretch"):
    image, patch = working_resolution(f, budget, resize=resize, channels=1, epochs=20, th=TH)
    return image.value, patch.value, image.reason + " | " + patch.reason


# ---- working resolution ----------------------------------------------------------------------


def test_images_that_fit_the_budget_keep_their_own_size() -> None:
    size, patch, why = resolution(fp((128, 128)))
    assert (size, patch) == (128, 0)
    assert "own size" in why and "10.0 px across" in why


def test_tiny_images_take_the_least_size_the_network_takes() -> None:
    size, patch, _ = resolution(fp((12, 12), lesion=(3, 3)))
    assert (size, patch) == (TH.min_size, 0) and deepest(size, TH) == 2  # a 4 px bottleneck


def test_rounding_to_a_multiple_of_16_never_costs_small_lesions_their_last_pixels() -> None:
    # 100 px -> 96 would leave a 4 px lesion 3.84 px across: 112 instead
    assert resolution(fp((100, 100), lesion=(4, 4)))[0] == 112
    assert resolution(fp((100, 100), lesion=(20, 20)))[0] == 96


def test_huge_images_with_big_lesions_shrink_to_the_budget() -> None:
    size, patch, why = resolution(fp((2048, 2048), lesion=(300, 300)))
    assert patch == 0 and 128 <= size < 2048
    assert "largest size the budget allows" in why and "stays" in why
    # and a larger budget affords a larger size
    bigger = Budget(memory_mb=64_000, gflops=400, trial_seconds=1800, device=CPU)
    assert resolution(fp((2048, 2048), lesion=(300, 300)), bigger)[0] > size


def test_huge_images_with_tiny_lesions_get_native_resolution_patches() -> None:
    size, patch, why = resolution(fp((2048, 2048), lesion=(6, 6)))
    assert patch == size and 0 < patch < 2048
    # shrinking 2048 px to `size` would leave a 6 px lesion 6 * size / 2048 px across
    assert f"{6 * size / 2048:.1f} px across (under 4)" in why and "native resolution" in why


def test_the_5th_percentile_lesion_decides_not_the_median() -> None:
    big = fp((2048, 2048), lesion=(300, 300))
    mixed_extents = big.lesion_extents.copy()
    mixed_extents[: len(mixed_extents) // 10] = (6, 6)  # a tenth of the lesions are tiny
    mixed = Fingerprint(**{**big.__dict__, "lesion_extents": mixed_extents})
    assert resolution(big)[1] == 0 and resolution(mixed)[1] > 0


# ---- resize and spacing ----------------------------------------------------------------------


def test_non_square_images_are_padded() -> None:
    decision = resize_rule(fp((256, 128)), TH)
    assert decision.value == "pad" and "256x128" in decision.reason
    assert resize_rule(fp((128, 128)), TH).value == "stretch"


def test_anisotropic_pixels_of_a_square_field_are_stretched_square() -> None:
    # 256 x 128 px at 0.5 x 1.0 mm: 128 x 128 mm; stretching to a square makes the pixels square
    f = fp((256, 128), lesion=(16, 8), spacing=(0.5, 1.0))
    decision = resize_rule(f, TH)
    assert decision.value == "stretch" and "spacing 0.5 x 1" in decision.reason
    # the lesion is 16 x 8 px, 8 x 8 mm: stretched to 256 px it is 16 x 16 px, round again
    hours = Budget(memory_mb=8_000, gflops=40, trial_seconds=7200, device=CPU)
    size, patch, why = resolution(f, hours, resize=decision.value)
    assert (size, patch) == (256, 0) and "16.0 px across" in why
    padded = resolution(fp((256, 128), lesion=(16, 8)), hours, resize="pad")
    assert padded[0] == 256 and "8.0 px across" in padded[2]


# ---- depth -----------------------------------------------------------------------------------


def test_depth_keeps_a_4_px_bottleneck_and_one_shallower_that_covers_the_median_lesion() -> None:
    decision = depth_rule(128, 17.0, TH)
    assert decision.value == (4, 5)
    assert "depth 5 leaves a 4 px bottleneck" in decision.reason
    assert "depth 4 (8 px bottleneck) still sees 200 px" in decision.reason
    assert depth_rule(96, 6.0, TH).value == (3, 4)  # 96 = 6 * 16: depth 4 leaves 6 px
    assert depth_rule(16, 3.0, TH).value == (1, 2)


def test_a_lesion_wider_than_the_receptive_field_is_said_so() -> None:
    decision = depth_rule(512, 600.0, TH)
    assert decision.value == (TH.max_depth,)  # 5: the cap, 16 px bottleneck
    assert "narrower than the median lesion (600 px across)" in decision.reason
    assert depth_rule(512, 300.0, TH).value == (5,)  # only depth 5 (408 px) covers 300 px


# ---- filters, batch, steps -------------------------------------------------------------------


def test_filters_are_the_widest_the_budget_and_the_512_filter_cap_allow() -> None:
    roomy = filters_rule(128, 5, ROOMY, channels=1, epochs=20, th=TH)
    assert roomy.value == (8, 16) and "nnU-Net caps it at 512" in roomy.reason
    assert filters_rule(128, 3, ROOMY, channels=1, epochs=20, th=TH).value == (16, 32)
    tight = Budget(memory_mb=8_000, gflops=40, trial_seconds=120, device=CPU)
    slow = filters_rule(128, 3, tight, channels=1, epochs=20, th=TH)
    assert max(slow.value) < 32 and "would need" in slow.reason
    none = Budget(memory_mb=1, gflops=40, trial_seconds=1800, device=CPU)
    assert filters_rule(128, 3, none, channels=1, epochs=20, th=TH).value == (4,)


def batch(n_train=1000, ladder=None, budget=ROOMY, per_image_mb=50.0, seconds=0.01):
    return batch_rule(
        n_train,
        ladder=ladder,
        memory_per_image_mb=per_image_mb,
        seconds_per_image=seconds,
        epochs=20,
        budget=budget,
        th=TH,
    )


def test_batch_is_capped_at_5_percent_of_the_training_set() -> None:
    assert batch(n_train=1000).value == 50  # 8000 MB fit 160 images of 50 MB
    small = batch(n_train=30)
    assert small.value == 2 and "at most 5% of the ~30 training images" in small.reason


def test_batch_estimated_from_memory_and_time_without_a_gpu() -> None:
    decision = batch(n_train=10_000, per_image_mb=500.0)
    assert decision.value == 16 and "estimated (no GPU to measure on)" in decision.reason
    slow = batch(n_train=10_000, seconds=0.5)  # 20 x 50 steps of 0.5 s per image: 3 per step
    assert slow.value == 3 and "up to a batch of 3" in slow.reason


def test_batch_norm_in_the_space_keeps_at_least_8_images_a_batch() -> None:
    """Batch norm cannot use 2 images a batch (Wu & He 2018): with it searched, the plan costs
    sizes and networks at 8 and never plans fewer; without it, nnU-Net's 2 stands."""
    slow = Budget(memory_mb=8_000, gflops=4, trial_seconds=1800, device=CPU)
    f = fp((128, 128), n=1000, lesion=(5, 5))
    normed = make_plan(f, Config(), slow).decisions
    plain = make_plan(f, Config().replace(**{"space.batch_norm": (False,)}), slow).decisions
    assert normed["train.batch_size"].value >= 8 > plain["train.batch_size"].value
    # sizes are costed at the batch the plan will use: 4x the images buy a smaller window
    assert normed["data.patch_size"].value == 32 and plain["data.patch_size"].value == 64
    # where the time budget allows only 3, the floor holds and says why
    floor = batch_rule(
        10_000, ladder=None, memory_per_image_mb=50.0, seconds_per_image=0.5, epochs=20,
        budget=ROOMY, th=Thresholds(min_batch=8),
    )  # fmt: skip
    assert floor.value == 8 and "up to a batch of 3" in floor.reason
    assert floor.reason.endswith("at least 8 for batch norm's statistics")


def test_steps_per_epoch_fill_the_budget_between_50_and_250() -> None:
    quick = steps_rule(0.01, epochs=20, n_train=120, batch=4, budget=ROOMY, th=TH)
    assert quick.value == 250 and "nnU-Net's 250" in quick.reason
    assert "120 training images 8.3x" in quick.reason  # a small set: several passes an epoch
    mid = steps_rule(1.0, epochs=20, n_train=120, batch=4, budget=ROOMY, th=TH)
    assert mid.value == 90  # 1800 s / 20 epochs / 1 s = 90
    slow = steps_rule(10.0, epochs=20, n_train=120, batch=4, budget=ROOMY, th=TH)
    assert slow.value == 50 and "over the 30 min budget" in slow.reason


# ---- the batch ladder ------------------------------------------------------------------------


def tf_oom() -> Exception:
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")


def jax_oom() -> Exception:
    from jax.errors import JaxRuntimeError

    return JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 2.0GiB")


def torch_oom(monkeypatch: pytest.MonkeyPatch) -> Exception:
    """torch's OutOfMemoryError, from a stand-in torch module where torch is not installed."""
    torch = sys.modules.get("torch")
    if torch is None:
        error = type("OutOfMemoryError", (RuntimeError,), {"__module__": "torch.cuda"})
        torch = types.SimpleNamespace(cuda=types.SimpleNamespace(OutOfMemoryError=error))
        monkeypatch.setitem(sys.modules, "torch", torch)
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize("kind", ["tensorflow", "jax", "torch", "python"])
def test_the_ladder_climbs_until_a_batch_runs_out_of_memory(kind, monkeypatch) -> None:
    error = {
        "tensorflow": tf_oom,
        "jax": jax_oom,
        "torch": lambda: torch_oom(monkeypatch),
        "python": MemoryError,
    }[kind]()
    tried = []

    def try_batch(n: int) -> float:
        tried.append(n)
        if n >= 16:
            raise error
        return 0.01 * n

    ladder = climb(try_batch, cap=50, device="Fake GPU")
    assert tried == [2, 4, 8, 16] and ladder.largest() == 8 and ladder.failed == 16
    gpu = Budget(memory_mb=80_000, gflops=1e4, trial_seconds=1800, device=Device("G", 1e5, True))
    decision = batch(n_train=1000, ladder=ladder, budget=gpu)
    assert decision.value == 8 and "measured on Fake GPU: 8 fits, 16 ran out of memory" in (
        decision.reason
    )


def test_the_ladder_stops_at_the_cap_and_other_errors_propagate() -> None:
    assert climb(lambda n: 0.1, cap=20, device="G").fits.keys() == {2, 4, 8, 16, 20}
    assert not out_of_memory(RuntimeError("RESOURCE_EXHAUSTED"))  # not a JAX error: no

    def broken(n: int) -> float:
        raise ValueError("a bug, not a batch size")

    with pytest.raises(ValueError, match="a bug"):
        climb(broken, cap=8, device="G")


def test_the_ladder_is_cached_per_key(tmp_path) -> None:
    path = tmp_path / "studies" / "batch-ladder.json"
    ladder = Ladder("NVIDIA H200", {2: 0.1, 4: 0.15}, failed=8)
    save_ladder(path, "a", ladder)
    save_ladder(path, "b", Ladder("CPU"))
    assert load_ladder(path, "a") == ladder and load_ladder(path, "c") is None
    path.write_text("{not json")
    assert load_ladder(path, "a") is None


# ---- intensity, oversampling, search space ---------------------------------------------------


@pytest.mark.parametrize(
    "names, dtype, high, expected",
    [
        (("CT",), "int16", 3000.0, "ct"),
        (("non-contrast CT",), "float32", 1.0, "ct"),
        (("FLAIR",), "uint16", 900.0, "zscore"),
        (("T1", "T1Gd", "T2", "FLAIR"), "int16", 2000.0, "zscore"),
        (("ADC",), "float32", 3.0, "zscore"),
        ((), "uint8", 255.0, "dtype"),  # 8-bit photographs
        (("Microscopy",), "uint8", 200.0, "dtype"),
        ((), "uint16", 4000.0, "minmax"),  # 12-bit data in 16-bit files
        ((), "uint16", 60000.0, "dtype"),
        ((), "float32", 1.0, "minmax"),
    ],
)
def test_intensity_follows_the_channel_names_then_the_pixel_type(names, dtype, high, expected):
    decision = intensity_rule(fp(names=names, dtype=dtype, high=high))
    assert decision.value == expected, decision.reason
    for name in names:
        assert repr(name) in decision.reason


def test_oversampling_for_patches_and_for_mostly_empty_images() -> None:
    assert oversample_rule(fp(), patches=True, th=TH).value == 0.33
    assert oversample_rule(fp(lesion_free=0.8), patches=False, th=TH).value == 0.33
    assert oversample_rule(fp(lesion_free=0.2), patches=False, th=TH).value == 0.0


def test_the_space_drops_what_doctor_would_warn_about() -> None:
    l2 = l2_rule(depth=4, filters=32, channels=1, th=TH)
    assert l2.value[1] < 1e-4 and "under 0.1 of a Dice loss" in l2.reason
    assert loss_rule(fp(lesion=(5, 5)), TH).value == ("dice_ce", "focal_tversky")
    assert "weighted_dice" in loss_rule(fp(lesion=(60, 60)), TH).value  # 22 % of the pixels


# ---- the whole plan --------------------------------------------------------------------------


def test_a_value_the_user_sets_wins_and_the_rules_after_it_plan_around_it() -> None:
    f = fp((128, 128), lesion=(17, 17))
    quick = Budget(memory_mb=8_000, gflops=80, trial_seconds=1800, device=CPU)
    planned = make_plan(f, Config(), quick)
    assert planned.decisions["data.image_size"].value == 128
    assert planned.decisions["space.depth"].value == (4, 5)
    cfg = Config().replace(**{"data.image_size": 64})
    mine = make_plan(f, cfg, quick, given={"data.image_size": 64})
    size = mine.decisions["data.image_size"]
    assert size.value == 64 and size.source == "yours" and "the plan: 128" in size.reason
    assert mine.decisions["space.depth"].value == (3, 4)  # planned for 64 px: 4 px at depth 4
    assert mine.note("data.image_size").startswith("yours: set with --set")


def test_the_plan_lands_in_the_settings_it_can_hold() -> None:
    plan = make_plan(fp((128, 128)), Config(), ROOMY)
    cfg, left_out = apply_plan(Config(), plan)
    assert cfg.train.steps_per_epoch == plan.decisions["train.steps_per_epoch"].value >= 50
    assert cfg.space.depth == plan.decisions["space.depth"].value
    assert cfg.train.batch_size == plan.decisions["train.batch_size"].value
    for key in left_out:  # only what this segsweep cannot hold yet
        assert key not in all_keys() or key in ("data.intensity", "data.lesion_oversample"), key


def test_planned_patches_land_in_the_settings_with_their_lesion_oversampling() -> None:
    plan = make_plan(fp((2048, 2048), lesion=(6, 6)), Config(), ROOMY)
    patch = plan.decisions["data.patch_size"]
    cfg, left_out = apply_plan(Config(), plan)
    assert cfg.data.patch_size == patch.value > 0 and "native resolution" in patch.reason
    assert cfg.data.patch_size % 2 ** max(cfg.space.depth) == 0  # doctor would refuse it else
    assert cfg.data.lesion_oversample == 0.33 and "data.lesion_oversample" not in left_out
    assert "centred on a lesion pixel" in plan.note("data.lesion_oversample")
    assert "not used" in left_out["data.image_size"]  # patches resize nothing


def test_whole_pictures_plan_no_patches_and_leave_oversampling_out() -> None:
    plan = make_plan(fp((128, 128), lesion_free=0.8), Config(), ROOMY)
    cfg, left_out = apply_plan(Config().replace(**{"data.patch_size": 32}), plan)
    assert cfg.data.patch_size == 0 and "whole images" in plan.note("data.patch_size")
    assert "drawn uniformly" in left_out["data.lesion_oversample"]


def test_the_real_try_batch_times_a_training_step(monkeypatch) -> None:
    """The ladder's step on this process's device (the CPU here): a tiny network, batch 2."""
    import os

    from segsweep.plan.device import keras_try_batch

    for name in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"):
        if name in os.environ:  # activate() writes them: restored after the test
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    try_batch = keras_try_batch(Config(), size=16, depth=1, filters=4, channels=1, steps=2)
    assert 0 < try_batch(2) < 60
