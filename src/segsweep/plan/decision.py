"""One planned value with its reason, and the numbers the rules hold to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Decision", "Thresholds"]


@dataclass(frozen=True)
class Decision:
    """A setting's value and why: ``source`` is "plan", or "yours" when ``--set`` gave it."""

    value: Any
    reason: str
    source: str = "plan"


@dataclass(frozen=True)
class Thresholds:
    """The rules' numbers, each stated once (and in the reasons the rules print)."""

    # resolution: the 5th-percentile lesion's smallest extent stays at least this wide
    min_extent_px: float = 4.0
    lesion_percentile: float = 5.0
    # volumes: 3D components under this many voxels are label specks, not lesions to plan for
    # (BraTS' lesion-wise scores skip true lesions under 50 voxels; metrics.min_lesion_px, when
    # larger, raises it)
    min_lesion_voxels: int = 10
    size_step: int = 16  # sizes are multiples of 2**4, so depth 4 always fits
    min_size: int = 16
    reference_filters: int = 16  # the network a size is costed with: filters 16, batch 2
    # depth: nnU-Net stops pooling at a 4 px feature map
    min_bottleneck_px: int = 4
    max_depth: int = 5
    # filters: nnU-Net 2D caps the deepest level at 512 filters; UNet++ doubles per level
    max_top_filters: int = 512
    filter_choices: tuple[int, ...] = (4, 8, 16, 32)  # nnU-Net starts at 32
    # batch: at least 2 (nnU-Net, whose instance norm does not average over the batch); at
    # least 8 when batch norm is searched (Wu & He 2018, "Group Normalization", fig. 1: batch
    # norm's ImageNet error is 24.8 % at 8 images a batch, 27.3 % at 4, 34.7 % at 2, as its
    # statistics get noisy); one batch at most 5 % of the training set (nnU-Net)
    min_batch: int = 2
    batch_norm_min_batch: int = 8
    batch_share: float = 0.05
    # training length: nnU-Net's 250 steps an epoch; never under 50 (batch norm's moving
    # statistics average over 10 steps at momentum 0.9, the seed case's trap at 0.99)
    steps: int = 250
    min_steps: int = 50
    # lesion oversampling: nnU-Net centres a third of its patches on foreground
    oversample: float = 0.33
    # search space: doctor warns at dropout 0.5 and an L2 penalty at initialisation over 0.1;
    # lesions under 5 % of the pixels make weighted_dice's background term free
    max_dropout: float = 0.3
    max_l2_penalty: float = 0.1
    rare_lesion: float = 0.05
    square: float = 1.1  # sides within 10 % count as square
