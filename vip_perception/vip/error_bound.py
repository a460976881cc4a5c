"""The pointwise bound on ViP's interpolation error, from the full-resolution map.

A stride-2 convolution with the original padding computes exactly the even positions of the
stride-1 map F (N, C, H, W), and BN (eval) and the activation act pointwise, so ViP's output is
V = P_v P_h F, where P_h rebuilds every column from the even ones (copy at even columns, mean of
the two neighbours at interior odd columns, copy of the previous column at a last column that
has no next neighbour) and P_v does the same along rows. Per axis the error e_h = P_h F - F is
  0 at even columns,
  (F[j-1] - 2F[j] + F[j+1]) / 2, half the central second difference, at interior odd columns,
  F[j-1] - F[j], the first difference, at a copied last column;
exactly, not just bounded. Since P_v P_h F - F = P_v e_h + e_v and P_v only averages,
  |V - F| <= P_v|e_h| + |e_v|,
and symmetrically |V - F| <= P_h|e_v| + |e_h|; the bound is the smaller of the two. At an
interior diagonal position (odd row, odd column) it reads |D_v(i,j)| + (|D_h(i-1,j)| +
|D_h(i+1,j)|)/2 with D the half second differences; everywhere else off the diagonal it is the
exact error. It is what the paper's smoothness argument becomes on a discrete map: small where
the map is locally linear, zero at even positions.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .upsample import vip_upsample

__all__ = ["BoundReport", "bound_report", "vip_error_bound", "vip_from_full"]


def _interp_last_axis(full: torch.Tensor) -> torch.Tensor:
    """P along the last axis: rebuild all columns of `full` from its even columns."""
    W = full.shape[-1]
    even = full[..., ::2]  # (..., w), w = ceil(W/2)
    w = even.shape[-1]
    out = torch.empty_like(full)
    out[..., ::2] = even
    out[..., 1 : 2 * w - 1 : 2] = (even[..., :-1] + even[..., 1:]) / 2
    if W == 2 * w:  # even length: the last column has no next neighbour and copies
        out[..., -1] = even[..., -1]
    return out


def vip_from_full(full: torch.Tensor) -> torch.Tensor:
    """ViP's output implied by the full map (N, C, H, W): interpolate its even positions."""
    return vip_upsample(full[..., ::2, ::2], full.shape[-2:])  # (N, C, H, W)


def vip_error_bound(full: torch.Tensor) -> torch.Tensor:
    """Pointwise bound (N, C, H, W) on |ViP - full| for a full-resolution map (N, C, H, W)."""
    if full.dim() != 4:
        raise ValueError(f"vip_error_bound expects (N, C, H, W), got shape {tuple(full.shape)}")
    f = full.double()  # the bound itself should not add rounding error
    e_h = (_interp_last_axis(f) - f).abs()  # (N, C, H, W) per-axis errors, exact
    e_v = (_interp_last_axis(f.transpose(-1, -2)).transpose(-1, -2) - f).abs()
    p_v_eh = _interp_last_axis(e_h.transpose(-1, -2)).transpose(-1, -2)  # P_v |e_h|
    p_h_ev = _interp_last_axis(e_v)  # P_h |e_v|
    return torch.minimum(p_v_eh + e_v, p_h_ev + e_h)


@dataclass
class BoundReport:
    positions: int  # positions with a non-zero bound (the odd ones, where ViP interpolates)
    max_excess: float  # max(|vip - full| - bound); <= float tolerance when the bound holds
    mean_ratio: float  # mean |vip - full| / bound over those positions (1 = tight)
    median_ratio: float
    diagonal_mean_ratio: float  # the same at (odd, odd) positions, the only ones where it is not exact
    mean_error: float  # mean |vip - full| over those positions
    mean_bound: float
    even_max_error: float  # max |vip - full| at even positions (0 up to conv rounding)
    mean_abs_full: float  # mean |full|: the scale the errors compare with

    def to_dict(self) -> dict:
        return asdict(self)


def bound_report(full: torch.Tensor, vip: torch.Tensor | None = None, eps: float = 1e-12) -> BoundReport:
    """How well the bound holds and how tight it is; `vip` defaults to vip_from_full(full)."""
    vip = vip_from_full(full) if vip is None else vip
    if vip.shape != full.shape:
        raise ValueError(f"vip shape {tuple(vip.shape)} differs from full shape {tuple(full.shape)}")
    bound = vip_error_bound(full)
    err = (vip.double() - full.double()).abs()
    mask = bound > eps
    ratio = err[mask] / bound[mask]
    even = err[..., ::2, ::2]
    diag_err, diag_bound = err[..., 1::2, 1::2], bound[..., 1::2, 1::2]
    diag_mask = diag_bound > eps
    diag_ratio = diag_err[diag_mask] / diag_bound[diag_mask]
    return BoundReport(
        positions=int(mask.sum()),
        max_excess=float((err - bound).max()),
        mean_ratio=float(ratio.mean()) if ratio.numel() else float("nan"),
        median_ratio=float(ratio.median()) if ratio.numel() else float("nan"),
        diagonal_mean_ratio=float(diag_ratio.mean()) if diag_ratio.numel() else float("nan"),
        mean_error=float(err[mask].mean()) if ratio.numel() else 0.0,
        mean_bound=float(bound[mask].mean()) if ratio.numel() else 0.0,
        even_max_error=float(even.max()) if even.numel() else 0.0,
        mean_abs_full=float(full.double().abs().mean()),
    )
