"""apply_vip: a new model with ViP on the named convolutions; the caller's model is untouched.

Layer names are those of ``model.named_modules()``. Where the structure tells us what follows a
convolution, the following BatchNorm (and activation) move into the ViPConv2d so they run on
the small map, as in the authors' code (ViP after BN+ReLU):
- in an ``nn.Sequential``: a following BatchNorm2d and then a pointwise activation are folded
  and replaced by ``nn.Identity`` (indices, hence names, stay the same);
- in torchvision ResNet ``BasicBlock``/``Bottleneck``: ``bn{i}`` is folded for ``conv{i}``;
  inner convolutions also get a ReLU on the small map (the block's shared ReLU then acts on
  the upsampled map, relu(relu(x)) = relu(x)); the last one has none, so ViP sits after BN and
  before the residual addition;
- anywhere else the convolution alone is wrapped (eval-mode BN is affine per channel and so
  commutes with the interpolation; only a nonlinearity placed later differs).
torchvision VGG also accepts the paper's names conv1_1 .. conv5_3, and the layer sets "all",
"none" and, for VGG16, "paper" (conv1_2, conv2_2, conv3_3, conv4_3, conv5_2, conv5_3).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch.nn as nn

from .conv import ViPConv2d, check_vip_able

__all__ = [
    "PAPER_VGG16",
    "LAYER_SETS",
    "apply_vip",
    "resolve_layers",
    "vgg_aliases",
    "vip_layer_names",
    "vip_layers_of",
]

# The authors' first ViP round for VGG16 (layers before each pooling, plus conv5_2).
PAPER_VGG16 = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_2", "conv5_3")
LAYER_SETS = ("all", "none", "paper")
VGG16_BLOCKS = (2, 2, 3, 3, 3)  # convolutions per block between poolings

# Pointwise activations that may run on the small map before interpolation.
_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
)


def _vip_convs_inside(model: nn.Module) -> set[str]:
    """Names of convolutions wrapped by an existing ViPConv2d (not separately addressable)."""
    return {f"{name}.conv" if name else "conv" for name, m in model.named_modules() if isinstance(m, ViPConv2d)}


def vip_layer_names(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[str]:
    """Names of the convolutions that can take ViP (stride-1 nn.Conv2d), in registration order.

    With ``input_shape`` (N, C, H, W), convolutions whose input map is under 2x2 for that input
    (e.g. squeeze-excitation convolutions on a pooled 1x1 map) are left out: ViP saves nothing
    there.
    """
    wrapped = _vip_convs_inside(model)
    names = []
    for name, m in model.named_modules():
        if name in wrapped or not isinstance(m, nn.Conv2d):
            continue
        try:
            check_vip_able(m, name)
        except ValueError:
            continue
        names.append(name)
    if input_shape is None:
        return names
    sizes = _conv_input_sizes(model, names, input_shape)
    return [n for n in names if min(sizes.get(n, (0, 0))) >= 2]


def _conv_input_sizes(model: nn.Module, names: list[str], input_shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """(H, W) of each named module's input in one eval forward pass of zeros of ``input_shape``."""
    import torch

    sizes: dict[str, tuple[int, int]] = {}
    modules = dict(model.named_modules())
    def record(name: str):
        def hook(_module, args) -> None:  # returns None: the input passes unchanged
            sizes.setdefault(name, tuple(args[0].shape[-2:]))
        return hook

    hooks = [modules[n].register_forward_pre_hook(record(n)) for n in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return sizes


def vip_layers_of(model: nn.Module) -> list[str]:
    """Names of the convolutions that currently use ViP."""
    return [name for name, m in model.named_modules() if isinstance(m, ViPConv2d)]


def vgg_aliases(model: nn.Module) -> dict[str, str]:
    """Paper-style names convB_K -> module names (features.N) for a torchvision-style VGG."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or not hasattr(model, "classifier"):
        return {}
    aliases, block, k = {}, 1, 0
    for idx, m in features.named_children():
        if isinstance(m, nn.MaxPool2d):
            block, k = block + 1, 0
        elif isinstance(m, (nn.Conv2d, ViPConv2d)):
            k += 1
            aliases[f"conv{block}_{k}"] = f"features.{idx}"
    return aliases


def _is_vgg16(aliases: dict[str, str]) -> bool:
    blocks = [sum(1 for a in aliases if a.startswith(f"conv{b}_")) for b in range(1, 6)]
    return tuple(blocks) == VGG16_BLOCKS and len(aliases) == sum(VGG16_BLOCKS)


def _valid_message(model: nn.Module, aliases: dict[str, str]) -> str:
    names = vip_layer_names(model)
    msg = f"valid layer names: {', '.join(names) if names else '(none: no stride-1 Conv2d)'}"
    if aliases:
        msg += f"; aliases: {', '.join(aliases)}"
    msg += f"; layer sets: all, none{', paper' if _is_vgg16(aliases) else ''}"
    return msg


def resolve_layers(model: nn.Module, layers: str | Sequence[str]) -> list[str]:
    """Turn a layer spec into module names in forward order.

    `layers` is a sequence of names/aliases/sets, or one string: a set name ("all", "none",
    "paper") or a comma-separated list. Already-ViP layers are accepted (and kept).
    """
    items = [s.strip() for s in layers.split(",")] if isinstance(layers, str) else [str(s).strip() for s in layers]
    items = [s for s in items if s]
    aliases = vgg_aliases(model)
    able = vip_layer_names(model)
    done = vip_layers_of(model)
    wanted: set[str] = set()
    for item in items:
        if item == "none":
            continue
        if item == "all":
            wanted.update(able)
            continue
        if item == "paper":
            if not _is_vgg16(aliases):
                raise ValueError(f"layer set 'paper' is defined for VGG16 only; {_valid_message(model, aliases)}")
            wanted.update(aliases[a] for a in PAPER_VGG16)
            continue
        name = aliases.get(item, item)
        if name in able or name in done:
            wanted.add(name)
            continue
        module = dict(model.named_modules()).get(name)
        why = "no such module" if module is None else None
        if module is not None:
            try:
                check_vip_able(module, name)
                why = "it is inside a ViP layer"
            except ValueError as exc:
                why = str(exc)
        raise ValueError(f"cannot apply ViP to '{item}': {why}; {_valid_message(model, aliases)}")
    order = list(dict.fromkeys(able + done))
    return [n for n in order if n in wanted]


def _resnet_blocks() -> tuple[type, ...]:
    try:
        from torchvision.models.resnet import BasicBlock, Bottleneck
    except ImportError:  # torchvision is optional for the core
        return ()
    return (BasicBlock, Bottleneck)


def _wrap(parent: nn.Module, key: str) -> ViPConv2d:
    """Build the ViPConv2d for parent.<key>, replacing folded followers by nn.Identity."""
    conv = getattr(parent, key)
    norm = act = None
    if isinstance(parent, nn.Sequential):
        keys = list(parent._modules)
        nxt = keys[keys.index(key) + 1 :]
        if nxt and isinstance(parent._modules[nxt[0]], nn.BatchNorm2d):
            norm = parent._modules[nxt[0]]
            parent._modules[nxt[0]] = nn.Identity()
            nxt = nxt[1:]
        if nxt and isinstance(parent._modules[nxt[0]], _ACTIVATIONS):
            act = parent._modules[nxt[0]]
            parent._modules[nxt[0]] = nn.Identity()
    elif isinstance(parent, _resnet_blocks()) and key.startswith("conv") and key[4:].isdigit():
        i = int(key[4:])
        bn = getattr(parent, f"bn{i}", None)
        if isinstance(bn, nn.BatchNorm2d):
            norm = bn
            setattr(parent, f"bn{i}", nn.Identity())
        last = max(int(k[4:]) for k in parent._modules if k.startswith("conv") and k[4:].isdigit())
        if i < last:
            act = nn.ReLU(inplace=True)
    return ViPConv2d(conv, norm, act)


def apply_vip(model: nn.Module, layers: str | Sequence[str]) -> nn.Module:
    """Return a deep copy of `model` with ViP on `layers` (see resolve_layers); `model` is unchanged."""
    names = resolve_layers(model, layers)
    new = copy.deepcopy(model)
    modules = dict(new.named_modules())
    for name in names:
        if isinstance(modules[name], ViPConv2d):
            continue
        parent_name, _, key = name.rpartition(".")
        parent = modules[parent_name] if parent_name else new
        setattr(parent, key, _wrap(parent, key))
    return new
