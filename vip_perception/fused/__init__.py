"""Fused ViP execution: exact rewrites that keep ViP layers on their small maps.

pool_fusion: max-pooling of a ViP map from the small map; fold: ViP folded into the next
convolution (stride 2: one folded conv; stride 1: four phase convs); native: the C++
channels-last kernels with PyTorch fallback; packed: convolutions with weights reordered once;
convert: ``fuse_vip(model)``.
"""
from .convert import FoldedViPConv, FusedViPStage, fuse_vip, fused_stages
from .fold import (
    PhaseConv,
    conv_after_vip,
    conv_after_vip_reference,
    extend_small,
    fold_stride2_weight,
    vip_conv_after_vip,
    vip_conv_after_vip_reference,
)
from .native import native_available, native_status
from .packed import PackedConv2d, pack_convs, packing_available
from .pool_fusion import is_fusable_pool, vip_max_pool2d, vip_max_pool2d_reference

__all__ = [
    "FoldedViPConv",
    "FusedViPStage",
    "PackedConv2d",
    "PhaseConv",
    "conv_after_vip",
    "conv_after_vip_reference",
    "extend_small",
    "fold_stride2_weight",
    "fuse_vip",
    "fused_stages",
    "is_fusable_pool",
    "native_available",
    "native_status",
    "pack_convs",
    "packing_available",
    "vip_conv_after_vip",
    "vip_conv_after_vip_reference",
    "vip_max_pool2d",
    "vip_max_pool2d_reference",
]
