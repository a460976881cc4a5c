"""Virtual Pooling (ViP): exact upsampling, the ViP convolution, model rewriting, MAC counting
and the interpolation error bound. ROS-free."""
from .apply import (
    LAYER_SETS,
    PAPER_VGG16,
    apply_vip,
    resolve_layers,
    vgg_aliases,
    vip_layer_names,
    vip_layers_of,
)
from .conv import ViPConv2d, check_vip_able, conv_output_size
from .error_bound import BoundReport, bound_report, vip_error_bound, vip_from_full
from .macs import LayerReduction, MacReduction, MacReport, compare_macs, count_macs
from .upsample import SUPPORTED_DTYPES, vip_upsample, vip_upsample_reference

__all__ = [
    "LAYER_SETS",
    "PAPER_VGG16",
    "SUPPORTED_DTYPES",
    "BoundReport",
    "LayerReduction",
    "MacReduction",
    "MacReport",
    "ViPConv2d",
    "apply_vip",
    "bound_report",
    "check_vip_able",
    "compare_macs",
    "count_macs",
    "conv_output_size",
    "resolve_layers",
    "vgg_aliases",
    "vip_error_bound",
    "vip_from_full",
    "vip_layer_names",
    "vip_layers_of",
    "vip_upsample",
    "vip_upsample_reference",
]
