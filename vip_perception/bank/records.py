"""Typed records shared by the builder, the manifest and the runtime: input spec, latency
profile and one model's metadata (architecture, ViP layers, cost, accuracy, latency)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..letterbox import DEFAULT_PAD_VALUE
from ..runtime.selector import QUANTILES


class BankError(Exception):
    """Any problem with a bank on disk: missing, truncated or tampered file, schema violation."""


@dataclass(frozen=True)
class InputSpec:
    """What a member expects: preprocess turns an image into (1, C, H, W) float32 with these."""

    height: int
    width: int
    channels: int  # 1 grey or 3 RGB
    mean: tuple  # per channel, [0, 1] pixel units
    std: tuple
    invert: bool = False  # use 255 - pixel (dark objects on a light ground -> Fashion-MNIST style)
    resize: str = "stretch"  # "stretch" to H x W, or "letterbox" (aspect kept, border of pad_value)
    pad_value: int = DEFAULT_PAD_VALUE  # letterbox border grey, 0..255

    def to_dict(self) -> dict:
        d = {"height": self.height, "width": self.width, "channels": self.channels,
             "mean": list(self.mean), "std": list(self.std), "invert": self.invert, "color_order": "RGB"}
        if self.resize != "stretch":  # stretched banks keep the manifest they always had
            d |= {"resize": self.resize, "pad_value": self.pad_value}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(int(d["height"]), int(d["width"]), int(d["channels"]),
                   tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]), bool(d["invert"]),
                   str(d.get("resize", "stretch")), int(d.get("pad_value", DEFAULT_PAD_VALUE)))


@dataclass(frozen=True)
class LatencyProfile:
    """Batch-1 latency quantiles in milliseconds, measured on one machine at one thread count."""

    p50: float
    p95: float
    p99: float
    mean: float = 0.0
    runs: int = 0
    gap_ms: float = 0.0  # idle time before each timed run (0 = back to back; see bank.profile)

    def quantile(self, q: str) -> float:
        if q not in QUANTILES:
            raise ValueError(f"latency quantile must be one of {QUANTILES}, got {q!r}")
        return float(getattr(self, q))

    def to_dict(self) -> dict:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99, "mean": self.mean, "runs": self.runs,
                "gap_ms": self.gap_ms}

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyProfile":
        return cls(float(d["p50"]), float(d["p95"]), float(d["p99"]), float(d.get("mean", 0.0)), int(d.get("runs", 0)),
                   float(d.get("gap_ms", 0.0)))


@dataclass
class CandidateRecord:
    """One trained model of a build (member or not); weights live beside it as safetensors."""

    name: str
    kind: str  # "base" | "parent" | "vip"
    spec: dict  # ModelSpec.to_dict()
    vip_layers: list[str] = field(default_factory=list)
    parent: str | None = None
    val_accuracy: float = 0.0
    test_accuracy: float = 0.0
    macs: int = 0
    param_bytes: int = 0
    train: dict = field(default_factory=dict)  # recipe, samples, seconds, final loss
    latency: dict[int, LatencyProfile] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "spec": self.spec, "vip_layers": list(self.vip_layers),
            "parent": self.parent, "val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy,
            "macs": self.macs, "param_bytes": self.param_bytes, "train": self.train,
            "latency": {str(t): p.to_dict() for t, p in sorted(self.latency.items())},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CandidateRecord":
        return cls(
            name=d["name"], kind=d["kind"], spec=d["spec"], vip_layers=list(d.get("vip_layers", [])),
            parent=d.get("parent"), val_accuracy=float(d["val_accuracy"]), test_accuracy=float(d["test_accuracy"]),
            macs=int(d["macs"]), param_bytes=int(d["param_bytes"]), train=d.get("train", {}),
            latency={int(t): LatencyProfile.from_dict(p) for t, p in d.get("latency", {}).items()},
        )

    def quantile_ms(self, threads: int, q: str = "p95") -> float:
        if threads not in self.latency:
            raise KeyError(f"{self.name}: no latency profile at {threads} threads (have {sorted(self.latency)})")
        return self.latency[threads].quantile(q)
