"""Classifier model families built from a declarative, JSON-serialisable spec."""
from .classifier import BasicBlock, Classifier, build_model
from .spec import ModelSpec

__all__ = ["BasicBlock", "Classifier", "ModelSpec", "build_model"]
