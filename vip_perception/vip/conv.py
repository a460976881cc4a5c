"""ViPConv2d: run a stride-1 convolution at stride 2 and rebuild its output by ViP interpolation.

The wrapped convolution's parameters are shared, not copied, so fine-tuning the ViP model
trains the same tensors and state_dict round trips keep one copy. Normalisation and activation
run on the small map (the authors place ViP after BN and ReLU), which is where the ~4x saving
in multiply-adds comes from; the interpolation itself is cheap and memory-bound.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .upsample import vip_upsample

__all__ = ["ViPConv2d", "check_vip_able", "conv_output_size"]


def _numeric_padding(conv: nn.Conv2d) -> tuple[int, int]:
    """Padding as numbers; 'same' becomes its symmetric equivalent, which a stride-2 run can use."""
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        pads = []
        for k, d in zip(conv.kernel_size, conv.dilation):
            total = d * (k - 1)
            if total % 2:
                raise ValueError(
                    f"padding='same' with kernel {conv.kernel_size} and dilation {conv.dilation} is "
                    "asymmetric; ViP needs symmetric padding"
                )
            pads.append(total // 2)
        return tuple(pads)
    return tuple(conv.padding)


def check_vip_able(conv: nn.Module, name: str = "conv") -> None:
    """Raise ValueError saying why `conv` cannot take ViP (only stride-1 nn.Conv2d can)."""
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"layer '{name}' is {type(conv).__name__}, not nn.Conv2d; ViP applies to convolutions")
    if tuple(conv.stride) != (1, 1):
        raise ValueError(f"layer '{name}' has stride {tuple(conv.stride)}; ViP needs a stride-1 convolution")
    _numeric_padding(conv)


def conv_output_size(conv: nn.Conv2d, in_size: tuple[int, int]) -> tuple[int, int]:
    """Output (H, W) of the stride-1 convolution for an input of `in_size`."""
    pad = _numeric_padding(conv)
    return tuple(
        n + 2 * p - d * (k - 1)
        for n, p, d, k in zip(in_size, pad, conv.dilation, conv.kernel_size)
    )


class ViPConv2d(nn.Module):
    """conv (stride 1) -> [norm] -> [act], computed at stride 2 and upsampled to the original size."""

    def __init__(self, conv: nn.Conv2d, norm: nn.Module | None = None, act: nn.Module | None = None):
        super().__init__()
        check_vip_able(conv)
        self.conv = conv  # shared module: same Parameter objects, no copy
        self.norm = norm if norm is not None else nn.Identity()
        self.act = act if act is not None else nn.Identity()
        self._padding = _numeric_padding(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C_in, H_in, W_in)
        conv = self.conv
        out_size = conv_output_size(conv, x.shape[-2:])
        if min(out_size) < 1:
            raise ValueError(f"input {tuple(x.shape)} is too small for {conv}")
        padding = self._padding
        if conv.padding_mode != "zeros":  # reflect/replicate/circular: pad explicitly, as nn.Conv2d does
            x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            padding = (0, 0)
        # (N, C_out, ceil(H/2), ceil(W/2))
        y = F.conv2d(x, conv.weight, conv.bias, 2, padding, conv.dilation, conv.groups)
        y = self.act(self.norm(y))
        return vip_upsample(y, out_size)  # (N, C_out, H, W)

    def extra_repr(self) -> str:
        return "stride-2 conv + norm + act, then ViP interpolation to the stride-1 size"
