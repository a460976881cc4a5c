"""ModelSpec: the JSON-serialisable record that rebuilds a classifier's architecture.

A bank manifest stores this record (plus ViP layers) instead of pickled modules, so a bank is
plain data and the architecture can be rebuilt and checked by any reader.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

FAMILIES = ("plain", "resnet")
POOLS = ("max", "avg")
HEADS = ("gap", "flatten")


@dataclass
class ModelSpec:
    """One CNN classifier; ``build_model`` turns it into an ``nn.Module``."""

    family: str = "plain"  # "plain" (VGG-style conv stacks) or "resnet" (basic residual blocks)
    # plain: conv widths per stage; resnet: block widths per stage
    stages: list[list[int]] = field(default_factory=lambda: [[16], [32]])
    kernel_size: int = 3  # odd kernel of every 3x3-style conv (padding keeps the size)
    batch_norm: bool = True  # BN after each conv (resnet always uses BN)
    pool: str = "max"  # plain: 2x2 pooling after every stage but the last ("max" | "avg"); resnet: unused
    head: str = "gap"  # "gap": global average pool + linear; "flatten": flatten + hidden FC
    hidden: int = 0  # flatten head only: hidden units (0 = a single linear layer)
    dropout: float = 0.0  # before the last linear layer
    stem: int = 0  # resnet: stem conv width (0 = first stage width)
    in_channels: int = 1  # input channels (1 grey, 3 RGB)
    input_size: tuple[int, int] = (28, 28)  # (height, width) the head is sized for
    num_classes: int = 10

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)  # JSON gives lists
        self.stages = [[int(w) for w in stage] for stage in self.stages]
        self.validate()

    def validate(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"ModelSpec.family must be one of {FAMILIES}, got {self.family!r}")
        if not self.stages or any(not s or min(s) <= 0 for s in self.stages):
            raise ValueError(f"ModelSpec.stages must be non-empty lists of positive widths, got {self.stages}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"ModelSpec.kernel_size must be odd and positive, got {self.kernel_size}")
        if self.pool not in POOLS:
            raise ValueError(f"ModelSpec.pool must be one of {POOLS}, got {self.pool!r}")
        if self.head not in HEADS:
            raise ValueError(f"ModelSpec.head must be one of {HEADS}, got {self.head!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelSpec.dropout must be in [0, 1), got {self.dropout}")
        if min(self.input_size) < 2 ** (len(self.stages) - 1):
            raise ValueError(f"ModelSpec.input_size {self.input_size} too small for {len(self.stages)} stages")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"ModelSpec: unknown keys {unknown}")
        return cls(**d)

    def short_name(self) -> str:
        """Readable, unique-enough id, e.g. ``plain-16.16_32-k3-bn-max-gap``."""
        widths = "_".join(".".join(str(w) for w in s) for s in self.stages)
        parts = [self.family, widths, f"k{self.kernel_size}", "bn" if self.batch_norm else "nobn"]
        if self.family == "plain":
            parts.append(self.pool)
        else:
            parts.append(f"stem{self.stem or self.stages[0][0]}")
        parts.append(self.head if self.head == "gap" else f"fc{self.hidden}")
        if self.in_channels != 1:
            parts.append(f"c{self.in_channels}")
        return "-".join(parts)
