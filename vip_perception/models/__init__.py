"""Classifier model families built from a declarative, JSON-serialisable spec: the project's own
CNNs (``ModelSpec``) and torchvision architectures by name (``TorchvisionSpec``)."""
from .classifier import BasicBlock, Classifier, build_model
from .spec import ModelSpec
from .torchvision_arch import ARCHS as TORCHVISION_ARCHS
from .torchvision_arch import TorchvisionSpec, WeightsError, build_torchvision

__all__ = ["TORCHVISION_ARCHS", "BasicBlock", "Classifier", "ClassifierSpec", "ModelSpec", "TorchvisionSpec",
           "WeightsError", "build_classifier", "build_model", "build_torchvision", "spec_from_dict"]

ClassifierSpec = ModelSpec | TorchvisionSpec


def spec_from_dict(d: dict) -> ClassifierSpec:
    """A manifest ``spec`` record -> its spec: ``TorchvisionSpec`` when it names an ``arch``,
    ``ModelSpec`` otherwise. ValueError for unknown keys or values."""
    return TorchvisionSpec.from_dict(d) if "arch" in d else ModelSpec.from_dict(d)


def build_classifier(spec: ClassifierSpec | dict):
    """A freshly initialised classifier (train mode) for a spec or its manifest record."""
    if isinstance(spec, dict):
        spec = spec_from_dict(spec)
    return build_torchvision(spec) if isinstance(spec, TorchvisionSpec) else build_model(spec)
