"""Fashion-MNIST garments as the inspection station's camera shows them, at any model resolution.

Why: the station classifier sees the roi of a camera frame (``synthetic_scene.ConveyorScene``
and real stations alike): a garment filling most of a square crop on a belt, resampled to the
model's input size (64x64 and up), with the camera's lighting, focus and noise. Training on
28x28 dataset images teaches none of that. ``render_station`` draws a batch of 28x28 items into
such crops in torch, on the fly, so a build never stores the enlarged images:

- nominal (``augment=None``): the station scene's look after the node's preprocessing: the
  garment fills the square (bilinear resampling), light on a dark belt (``NOMINAL_BELT`` grey
  levels), composited with max() as the scene does. Validation and test use it, so the
  reported accuracy is that of the station camera's frames
  (``test/test_station_render.py`` compares it with real scene crops);
- augmented (``StationAugment``): per image, the garment's position, scale, rotation and
  mirror, lighting (garment gain, belt level, slat pattern, a vertical light gradient), focus
  blur and sensor noise are drawn from the given ranges.

Output: float32 (B, 1, S, S) in grey levels 0..255 (normalise with the bank's mean/std).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NOMINAL_BELT = 4.5  # grey level of the station scene's belt after area resampling (belt 4, slats +6 over 1/12)


@dataclass(frozen=True)
class StationAugment:
    """Ranges each augmented image draws from uniformly (per image, independently)."""

    scale: tuple[float, float] = (0.75, 1.05)  # garment side / crop side
    shift: float = 0.12  # max centre offset, fraction of the crop side (each axis)
    rotate_deg: float = 12.0  # max rotation either way
    flip: float = 0.5  # probability of a left-right mirror
    gain: tuple[float, float] = (0.6, 1.25)  # garment brightness factor (lighting)
    belt: tuple[float, float] = (0.0, 40.0)  # belt grey level
    slat_contrast: tuple[float, float] = (0.0, 14.0)  # slats brighter than the belt by this
    slat_period: tuple[float, float] = (3.0, 12.0)  # slat spacing, output pixels
    gradient: float = 12.0  # max top-to-bottom light gradient, grey levels
    blur_sigma: tuple[float, float] = (0.0, 1.2)  # Gaussian focus blur, output pixels
    blur_probability: float = 0.5
    noise_std: tuple[float, float] = (0.0, 6.0)  # sensor noise, grey levels

    def __post_init__(self):
        for name in ("scale", "gain", "belt", "slat_contrast", "slat_period", "blur_sigma", "noise_std"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"StationAugment.{name}: need 0 <= low <= high, got ({lo}, {hi})")
        if self.scale[0] <= 0 or self.slat_period[0] <= 0:
            raise ValueError("StationAugment.scale and slat_period must be positive")


def station_augment(overrides: dict, base: StationAugment | None = None) -> StationAugment:
    """``base`` (default: the defaults) with the fields in ``overrides`` replaced (lists become
    ranges); ValueError naming the field for an unknown field or a bad range."""
    from dataclasses import fields, replace

    known = {f.name for f in fields(StationAugment)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"station augmentation: unknown fields {unknown} (known: {sorted(known)})")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return replace(base or StationAugment(), **values)


def _uniform(lo_hi: tuple[float, float], n: int, gen: torch.Generator | None) -> torch.Tensor:
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _geometry(n: int, aug: StationAugment, gen: torch.Generator | None) -> torch.Tensor:
    """(n, 2, 3) affine maps from output to source coordinates (``F.affine_grid``'s convention)."""
    scale = _uniform(aug.scale, n, gen)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(aug.rotate_deg)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * aug.shift * 2  # in [-1, 1] grid units
    mirror = torch.where(torch.rand(n, generator=gen) < aug.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * mirror, -sin * mirror
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    # output point p maps to A (p - shift): the garment's centre lands at `shift`
    theta[:, :, 2] = -(theta[:, :, :2] @ shift.unsqueeze(-1)).squeeze(-1)
    return theta


def _background(n: int, size: int, aug: StationAugment, gen: torch.Generator | None) -> torch.Tensor:
    """(n, 1, S, S) belt: level + slats (a square wave along x) + a vertical light gradient."""
    x = torch.arange(size, dtype=torch.float32).view(1, 1, 1, size)
    y = torch.linspace(-0.5, 0.5, size).view(1, 1, size, 1)
    period = _uniform(aug.slat_period, n, gen).view(n, 1, 1, 1)
    phase = torch.rand(n, generator=gen).view(n, 1, 1, 1) * period
    slats = (torch.remainder(x + phase, period) < period / 6).float()  # (n, 1, 1, S)
    level = _uniform(aug.belt, n, gen).view(n, 1, 1, 1)
    contrast = _uniform(aug.slat_contrast, n, gen).view(n, 1, 1, 1)
    tilt = ((torch.rand(n, generator=gen) * 2 - 1) * aug.gradient).view(n, 1, 1, 1)
    return (level + contrast * slats + tilt * y).expand(n, 1, size, size)


def _blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image separable Gaussian blur; sigma (B,) in pixels, 0 leaves an image unchanged."""
    n = images.shape[0]
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.clamp_min(1e-3).view(-1, 1)) ** 2)  # (B, K)
    k = k / k.sum(1, keepdim=True)
    x = images.transpose(0, 1)  # (1, B, S, S): one group per image
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(n, 1, 1, -1), groups=n)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(n, 1, -1, 1), groups=n)
    return x.transpose(0, 1)


def render_station(items: torch.Tensor, size: int, augment: StationAugment | None = None,
                   gen: torch.Generator | None = None) -> torch.Tensor:
    """Garments (B, 28, 28) uint8 -> station crops (B, 1, size, size) float32 grey levels 0..255.

    ``augment=None`` renders the nominal station view (deterministic); otherwise every image
    draws its own conditions from ``augment`` with ``gen``. Raises ValueError for a batch that
    is not (B, H, W) or a size below 8.
    """
    if items.ndim != 3:
        raise ValueError(f"render_station: items must be (B, H, W), got {tuple(items.shape)}")
    if size < 8:
        raise ValueError(f"render_station: size must be >= 8, got {size}")
    n = items.shape[0]
    src = items.unsqueeze(1).float()  # (B, 1, 28, 28)
    if augment is None:
        garment = F.interpolate(src, size=(size, size), mode="bilinear", align_corners=False)
        return torch.maximum(garment, torch.full_like(garment, NOMINAL_BELT))
    theta = _geometry(n, augment, gen)
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    garment = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    garment = garment * _uniform(augment.gain, n, gen).view(n, 1, 1, 1)
    out = torch.maximum(garment, _background(n, size, augment, gen))
    sigma = _uniform(augment.blur_sigma, n, gen)
    sigma = torch.where(torch.rand(n, generator=gen) < augment.blur_probability, sigma, torch.zeros(n))
    if float(sigma.max()) > 0.05:
        out = _blur(out, sigma)
    noise = _uniform(augment.noise_std, n, gen).view(n, 1, 1, 1)
    out = out + noise * torch.randn(out.shape, generator=gen)
    return out.clamp_(0.0, 255.0)
