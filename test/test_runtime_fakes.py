"""Fake clock, members and banks for the runtime tests (no trained models, no wall-clock speed).

A fake member's forward advances the fake clock by a duration that depends on the current
torch thread count and on a shared "load" switch, which is how the tests create contention.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vip_perception.backends.torch_backend import run_torch
from vip_perception.runtime.cpu_load import CpuLoad


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += ms / 1e3


@dataclass
class Profile:
    p50: float
    p95: float
    p99: float


class Load:
    """Multiplier per thread count, changed by the test to simulate contention."""

    def __init__(self) -> None:
        self.factor = {1: 1.0, 2: 1.0}


class FakeModule:
    def __init__(self, clock: FakeClock, ms: dict, load: Load, class_id: int, num_classes: int = 10) -> None:
        self.clock, self.ms, self.load, self.class_id, self.num_classes = clock, ms, load, class_id, num_classes

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.get_num_threads()
        if self.clock is not None:
            self.clock.advance_ms(self.ms[t] * self.load.factor.get(t, 1.0))
        logits = torch.zeros(x.shape[0], self.num_classes)  # (N, classes)
        logits[:, self.class_id] = 5.0
        return logits


class FakeMember:
    def __init__(self, name, val_accuracy, ms: dict, clock=None, load=None, class_id=0, p95_over_p50=1.0):
        self.name = name
        self.val_accuracy = val_accuracy
        self.test_accuracy = val_accuracy
        self.latency = {t: Profile(v, v * p95_over_p50, v * p95_over_p50 * 1.2) for t, v in ms.items()}
        self.module = FakeModule(clock, ms, load or Load(), class_id)

    def quantile_ms(self, threads: int, q: str = "p95") -> float:
        return getattr(self.latency[threads], q)

    def run(self, x: torch.Tensor, threads: int) -> torch.Tensor:
        """As bank.Member.run on the torch backend: the thread count is the process's."""
        return run_torch(self.module, x, threads)


@dataclass
class InputSpec:
    height: int = 28
    width: int = 28
    channels: int = 1


class FakeBank:
    def __init__(self, members, name="fake", class_prefix="c", clock=None, preprocess_ms=0.0):
        self.members = list(members)
        self.name = name
        self.path = f"/fake/{name}"
        self.task = "classification"
        self.class_names = [f"{class_prefix}{i}" for i in range(10)]
        self.input_spec = InputSpec()
        self.clock, self.preprocess_ms = clock, preprocess_ms
        self.seen_shapes = []

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        self.seen_shapes.append(image.shape)
        if self.clock is not None:
            self.clock.advance_ms(self.preprocess_ms)
        return torch.zeros(1, 1, 28, 28)  # (1, C, H, W)


def three_members(clock=None, load=None, prefix="m"):
    """Latency rises with accuracy; 2 threads are 1.5x faster than 1 without load."""
    load = load or Load()
    return [
        FakeMember(f"{prefix}_small", 0.80, {1: 1.5, 2: 1.0}, clock, load, class_id=1),
        FakeMember(f"{prefix}_mid", 0.85, {1: 3.0, 2: 2.0}, clock, load, class_id=2),
        FakeMember(f"{prefix}_large", 0.90, {1: 6.0, 2: 4.0}, clock, load, class_id=3),
    ]


class FakeCpuLoad(CpuLoad):
    """``runtime.cpu_load.CpuLoad`` on a fake clock: other processes use ``others`` cores (set by
    the test) of ``cpus`` cores; the kernel counters are their integral over the fake time."""

    def __init__(self, clock: FakeClock, cpus: int = 2, others: float = 0.0) -> None:
        self.fake_clock, self.others, self._ticks, self._at = clock, others, 0.0, clock()
        super().__init__(cpus=range(cpus), clock=clock)

    def _read(self):
        now = self.fake_clock()
        self._ticks += self.others * (now - self._at) * self._hz
        self._at = now
        return now, int(self._ticks), 0
