"""Voxel uncertainty and a per-case quality score for the two-stage liver and tumour prediction.

What `livervae infer --uncertainty` writes and reports, from `TwoStageLiverTumorNet.stage_probabilities`:

- Voxel maps, on the input CT's grid: P(liver) (liver including its tumours, 1 - P(background)), P(tumour), and
  the voxel uncertainty, the normalised entropy of the three class probabilities (0: certain, 1: all three
  classes equally likely). With test-time passes (flips, HU shifts, MC dropout) the probabilities are the mean
  over passes, so their entropy holds both the data and the model part of the uncertainty.
- A case quality score in [0, 1], the lower of the two stages' expected Dice (the tumour's after removing the
  probability of the regions post-processing decided are not tumours, `without_dropped_tumours`). The expected
  Dice of a predicted mask M under voxel probabilities p is 2 Σ_M p / (Σ p + |M|): the Dice the prediction would
  score if the reference were drawn voxel by voxel from p, which is close to the true Dice where p is calibrated.
  A stage with nothing predicted scores the probability that there is nothing to find, 1 - max p: an empty
  prediction has Dice 1 when the reference is empty and 0 otherwise, and the voxels of one finding are so
  correlated that the reference is empty about when its most likely voxel is not (the voxel-independent product
  of (1 - p) would call any diffuse doubt a certain miss).
- The VAE branch's reconstruction loss of stage 1 around the liver, as a ratio to its value on the training
  phantoms: an out-of-distribution signal that probabilities alone do not give (a model can be confidently
  wrong on a CT unlike anything it learnt from).
- `needs_review`: the liver's expected Dice below `review_liver_below` (0.9) or the tumour's below
  `review_tumor_below` (0.5), the thresholds at which a case counts as failed (issue 15: liver Dice < 0.9 or tumour
  Dice < 0.5), or the reconstruction ratio above `review_reconstruction_ratio` (all in the bundle's inference
  config).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from livervae.io.atomic import atomic_path

logger = logging.getLogger(__name__)

UNCERTAINTY_CHANNELS = ("liver_probability", "tumor_probability", "uncertainty")
# The map is stored as uint8 with scl_slope 1/255: every reader that applies NIfTI scaling gets floats in [0, 1]
# at 0.004 resolution, in a file about a quarter of float32's (most of a CT's voxels are certain background).
_MAP_SCALE = 255.0
# P(tumour) that bounds a candidate tumour region with its halo (`without_dropped_tumours`).
_REGION_FLOOR = 0.05


def normalised_entropy(classes: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Entropy of (C, ...) class probabilities over dimension 0, divided by log C: 0 certain, 1 uniform."""
    entropy = torch.special.entr(classes[0].float().clamp(eps, 1.0))
    for channel in classes[1:]:
        entropy += torch.special.entr(channel.float().clamp(eps, 1.0))
    return entropy.div_(math.log(classes.shape[0])).clamp_(0.0, 1.0)


def voxel_maps(liver: torch.Tensor, tumour: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """(3, *spatial) P(liver), P(tumour) and the normalised class entropy from the stage probabilities.

    The classes are `two_stage.compose_classes`' background (1 - t)(1 - l), liver (1 - t) l and tumour t; they
    are written into one output buffer a channel at a time (a CT has tens of millions of voxels).

    Args:
        liver: stage 1's liver probability l (any leading singleton dims), as `StageProbabilities.liver`.
        tumour: stage 2's tumour probability t on the same grid.
    """
    liver = liver.reshape(liver.shape[-3:]).float()
    tumour = tumour.reshape(tumour.shape[-3:]).float()
    maps = torch.empty((3, *liver.shape), dtype=torch.float32, device=liver.device)
    rest = torch.sub(1.0, tumour, out=maps[0])  # 1 - t, overwritten below
    entropy = maps[2]
    torch.special.entr(torch.mul(rest, liver).clamp_(eps, 1.0), out=entropy)  # liver class
    entropy += torch.special.entr((rest - rest * liver).clamp_(eps, 1.0))  # background class
    entropy += torch.special.entr(tumour.clamp(eps, 1.0))
    entropy.div_(math.log(3)).clamp_(0.0, 1.0)
    torch.addcmul(tumour, rest, liver, out=maps[0])  # 1 - P(background) = t + (1 - t) l
    maps[1] = tumour
    return maps


def expected_dice(probability: np.ndarray, mask: np.ndarray) -> float:
    """2 Σ_mask p / (Σ p + |mask|): the Dice `mask` scores against a reference drawn from the probabilities.

    For an empty mask, 1 - max p: the chance that there is nothing to find (see the module docstring).
    """
    probability = np.asarray(probability, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    mass, size = float(probability.sum()), int(mask.sum())
    if size == 0:
        return float(np.clip(1.0 - probability.max(initial=0.0), 0.0, 1.0))
    return float(2.0 * probability[mask].sum() / (mass + size))


@dataclass(frozen=True)
class CaseQuality:
    """The per-case quality report; see the module docstring.

    Attributes:
        score: min(liver_expected_dice, tumor_expected_dice), in [0, 1].
        liver_expected_dice: expected Dice of the predicted liver (labels 1 and 2) under P(liver).
        tumor_expected_dice: expected Dice of the predicted tumour (label 2) under P(tumour).
        mean_uncertainty: mean voxel uncertainty over the predicted liver (0 when there is none).
        reconstruction_ratio: stage 1's VAE reconstruction loss over its reference value on training phantoms
            (None when not measured).
        needs_review: the case should be looked at before its numbers are used.
        reasons: why it needs review (empty when it does not).
    """

    score: float
    liver_expected_dice: float
    tumor_expected_dice: float
    mean_uncertainty: float
    reconstruction_ratio: float | None
    needs_review: bool
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, values rounded to 4 digits."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 4)
        out["reasons"] = list(self.reasons)
        return out


@dataclass(frozen=True)
class UncertaintySettings:
    """How the maps are calibrated and when a case needs review.

    Attributes:
        liver_temperature: temperature of stage 1's probability in the maps (`two_stage.temper`), fitted on
            phantoms; the label map is not affected.
        tumor_temperature: the same for stage 2.
        review_liver_below: a case whose liver expected Dice is below this needs review.
        review_tumor_below: a case whose tumour expected Dice is below this needs review.
        review_reconstruction_ratio: a case whose stage-1 reconstruction loss is more than this many times
            `reference_reconstruction_loss` needs review.
        reference_reconstruction_loss: stage 1's median reconstruction loss on phantoms for these weights (None:
            no reconstruction check).
        liver_bias: added to the tempered liver logit (Platt scaling, P = sigmoid(logit(p) / T + bias)); 0 for
            temperature scaling alone.
        tumor_bias: the same for the tumour stage.
    """

    liver_temperature: float = 1.0
    tumor_temperature: float = 1.0
    review_liver_below: float = 0.9
    review_tumor_below: float = 0.5
    review_reconstruction_ratio: float = 1.5
    reference_reconstruction_loss: float | None = None
    liver_bias: float = 0.0
    tumor_bias: float = 0.0


# The network settings that decide its test-time passes, with TwoStageLiverTumorNet's defaults.
PASS_SETTINGS: dict[str, Any] = {"flips": [], "hu_shifts": [], "mc_samples": 1}


def normalised_passes(passes: dict[str, Any]) -> dict[str, Any]:
    """Test-time pass settings in one spelling (lists of ints and floats), missing ones at their defaults."""
    merged = {**PASS_SETTINGS, **passes}
    return {
        "flips": [[int(a) for a in axes] for axes in merged["flips"]],
        "hu_shifts": [float(v) for v in merged["hu_shifts"]],
        "mc_samples": int(merged["mc_samples"]),
    }


def load_uncertainty_settings(
    metadata_file: str | os.PathLike[str],
    model_file: str | os.PathLike[str],
    passes: dict[str, Any],
    review_liver_below: float | None = None,
    review_tumor_below: float | None = None,
    review_reconstruction_ratio: float | None = None,
) -> UncertaintySettings:
    """The review thresholds given, with the calibration a bundle's metadata recorded for these weights and passes.

    Temperatures and the reconstruction reference (`uncertainty_calibration`, written by
    `benchmarks/uncertainty.py --record`) belong to one set of weights and one set of test-time passes, so they
    are used only when the record names the same SHA-256 and passes; otherwise the maps are uncalibrated
    (temperature 1) and there is no reconstruction check.

    Args:
        metadata_file: the bundle's configs/metadata.json.
        model_file: the weights in use.
        passes: the network's `flips`, `hu_shifts` and `mc_samples`.
        review_liver_below: the liver threshold (None: the default).
        review_tumor_below: the tumour threshold (None: the default).
        review_reconstruction_ratio: the reconstruction threshold (None: the default).
    """
    import json

    from livervae.bundle import file_sha256

    record: dict[str, Any] = {}
    try:
        record = json.loads(Path(metadata_file).read_text(encoding="utf-8")).get("uncertainty_calibration", {})
    except (OSError, ValueError):
        pass
    if record and (not Path(model_file).is_file() or record.get("model_sha256") != file_sha256(model_file)):
        logger.info("uncertainty calibration was recorded for other weights; not used for %s", model_file)
        record = {}
    if record and normalised_passes(record.get("passes", {})) != normalised_passes(passes):
        logger.info("uncertainty calibration was recorded for other test-time passes; not used")
        record = {}
    defaults = UncertaintySettings()
    return UncertaintySettings(
        liver_temperature=float(record.get("liver_temperature", 1.0)),
        tumor_temperature=float(record.get("tumor_temperature", 1.0)),
        review_liver_below=defaults.review_liver_below if review_liver_below is None else float(review_liver_below),
        review_tumor_below=defaults.review_tumor_below if review_tumor_below is None else float(review_tumor_below),
        review_reconstruction_ratio=(
            defaults.review_reconstruction_ratio
            if review_reconstruction_ratio is None
            else float(review_reconstruction_ratio)
        ),
        reference_reconstruction_loss=record.get("reference_reconstruction_loss"),
        liver_bias=float(record.get("liver_bias", 0.0)),
        tumor_bias=float(record.get("tumor_bias", 0.0)),
    )


def calibrate(probability: torch.Tensor, temperature: float, bias: float = 0.0, eps: float = 1e-6) -> torch.Tensor:
    """sigmoid(logit(p) / T + bias) of a two-class softmax probability (temperature or Platt scaling)."""
    from livervae.networks.two_stage import temper  # the network imports the transforms, which import this

    if bias == 0.0:
        return temper(probability, temperature)
    p = probability.clamp(eps, 1.0 - eps)
    return torch.sigmoid(torch.logit(p) / temperature + bias)


def calibrated_maps(stages: np.ndarray | torch.Tensor, settings: UncertaintySettings) -> np.ndarray:
    """(3, *spatial) `voxel_maps` of (2, *spatial) stage probabilities (liver, tumour) after the settings'
    calibration of each stage."""
    stages = torch.as_tensor(np.asarray(stages, dtype=np.float32) if isinstance(stages, np.ndarray) else stages)
    liver = calibrate(stages[0].float(), settings.liver_temperature, settings.liver_bias)
    tumour = calibrate(stages[1].float(), settings.tumor_temperature, settings.tumor_bias)
    return voxel_maps(liver, tumour).cpu().numpy()


def stages_from_classes(classes: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """(2, *spatial) stage probabilities (l, t) back from (3, *spatial) composed classes: t = P(tumour),
    l = P(liver) / (P(liver) + P(background)), the inverse of `two_stage.compose_classes`."""
    rest = (classes[0] + classes[1]).clamp_min(eps)
    return torch.stack([(classes[1] / rest).clamp(0.0, 1.0), classes[2]])


def without_dropped_tumours(
    tumour_probability: np.ndarray, tumour_mask: np.ndarray, seed: float = 1.0 / 3.0, floor: float = _REGION_FLOOR
) -> np.ndarray:
    """P(tumour) with the regions post-processing decided are not tumours set to 0; a new array.

    A region is a 26-connected component of P(tumour) > `floor` (a blob with its low-probability halo). It is
    zeroed when it holds a would-be tumour (P >= `seed`) but none of the final tumour mask: the small-tumour
    filter or the largest-component step removed it. Without this, the expected tumour Dice counts every removed
    blob as a missed tumour, and a tumour-free case whose specks were rightly removed scores 0. Regions that never
    reached `seed` stay: they are the model's own doubt, a lesion it may have missed.

    Args:
        tumour_probability: P(tumour) on the label map's grid.
        tumour_mask: the final tumour mask (label 2 after post-processing).
        seed: probability from which a voxel may have been predicted tumour before post-processing: 1/3, the
            least P(tumour) t that wins the argmax of the composed classes (t, (1 - t) l, (1 - t)(1 - l)).
        floor: probability that bounds a region.
    """
    from monai.transforms.utils import generate_spatial_bounding_box
    from scipy import ndimage

    from livervae.labels import LESION_CONNECTIVITY

    probability = np.asarray(tumour_probability)
    mask = np.asarray(tumour_mask, dtype=bool)
    if probability.shape != mask.shape:
        raise ValueError(f"tumour probability {probability.shape} and tumour mask {mask.shape} differ in shape")
    out = probability.copy()
    candidate = probability > floor
    # Only the box around the candidates is labelled: the tumour model runs in stage 1's liver crop, a small part
    # of a whole CT (labelling the whole volume made `infer --uncertainty` on 512 x 512 x 160 take 18.7 s, not 15.2).
    if not candidate.any():
        return out
    start, end = generate_spatial_bounding_box(candidate[None], select_fn=lambda x: x)
    box = tuple(slice(int(a), int(b)) for a, b in zip(start, end))
    regions, count = ndimage.label(candidate[box], structure=LESION_CONNECTIVITY)
    index = np.arange(1, count + 1)
    peak = np.asarray(ndimage.maximum(probability[box], regions, index))
    kept = np.asarray(ndimage.maximum(mask[box], regions, index), dtype=bool)
    dropped = np.zeros(count + 1, dtype=bool)
    dropped[1:] = (peak >= seed) & ~kept
    out[box][dropped[regions]] = 0.0
    return out


def case_quality(
    maps: np.ndarray,
    label: np.ndarray,
    reconstruction_loss: float | None = None,
    settings: UncertaintySettings = UncertaintySettings(),
) -> CaseQuality:
    """Score one case from its voxel maps and its final label map (both on the same grid).

    Args:
        maps: (3, *spatial) `voxel_maps` output (P(liver), P(tumour), uncertainty).
        label: the 0/1/2 label map after post-processing.
        reconstruction_loss: stage 1's `liver_reconstruction_loss`, or None.
        settings: the review thresholds and reconstruction reference.
    """
    liver_mask, tumour_mask = label >= 1, label == 2
    liver_dice = expected_dice(maps[0], liver_mask)
    tumour_dice = expected_dice(without_dropped_tumours(maps[1], tumour_mask), tumour_mask)
    score = min(liver_dice, tumour_dice)
    mean_uncertainty = float(maps[2][liver_mask].mean()) if liver_mask.any() else 0.0
    ratio = None
    if reconstruction_loss is not None and settings.reference_reconstruction_loss:
        ratio = float(reconstruction_loss) / float(settings.reference_reconstruction_loss)
    reasons = []
    if liver_dice < settings.review_liver_below:
        reasons.append(f"expected liver Dice {liver_dice:.2f} < {settings.review_liver_below:.2f}")
    if tumour_dice < settings.review_tumor_below:
        reasons.append(f"expected tumour Dice {tumour_dice:.2f} < {settings.review_tumor_below:.2f}")
    if ratio is not None and ratio > settings.review_reconstruction_ratio:
        reasons.append(
            f"CT unlike the training data (reconstruction {ratio:.2f}x > {settings.review_reconstruction_ratio}x)"
        )
    return CaseQuality(score, liver_dice, tumour_dice, mean_uncertainty, ratio, bool(reasons), tuple(reasons))


def save_uncertainty_map(maps: np.ndarray, affine: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write (3, *spatial) maps as one 4D NIfTI (x, y, z, channel), uint8 scaled to [0, 1], atomically.

    Channel order is `UNCERTAINTY_CHANNELS`; the header's description names them.
    """
    if maps.ndim != 4 or maps.shape[0] != len(UNCERTAINTY_CHANNELS):
        raise ValueError(f"maps must be ({len(UNCERTAINTY_CHANNELS)}, x, y, z), got {maps.shape}")
    quantised = torch.as_tensor(maps).clamp(0.0, 1.0).mul_(_MAP_SCALE).round_().to(torch.uint8)
    data = np.moveaxis(quantised.numpy(), 0, -1)
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(np.uint8)
    img.header.set_slope_inter(1.0 / _MAP_SCALE, 0.0)
    img.header.set_intent("vector")
    img.header["descrip"] = b"LiverVAE P(liver),P(tumour),uncertainty"
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)
