"""`vip-perception bench vip`: time an original CNN and its ViP version side by side.

Both models run in one process on the same input, batch 1, in both NCHW and channels-last,
with warm-up first and then *interleaved* repetitions (the order rotates every round), so
drifting load on a shared machine hits all variants alike. Medians are reported per format;
``speedup`` is best against best: ViP's fastest format against the original's fastest, since
a deployment would pick the faster format for each. Random weights: timing does not depend
on them.
"""
from __future__ import annotations

import copy
import os
import statistics
import time
from dataclasses import asdict, dataclass, field

from vip_perception.machine import machine_info

ARCHS = ("vgg11", "vgg11_bn", "vgg13", "vgg16", "vgg16_bn", "vgg19", "resnet18", "resnet34", "resnet50",
         "mobilenet_v3_small", "mobilenet_v3_large")
FORMATS = ("nchw", "channels_last")


@dataclass
class BenchConfig:
    arch: str  # torchvision architecture name
    input: int  # square input side in pixels
    layers: str  # layer spec: paper | all | none | comma-separated names/aliases
    threads: int  # torch intra-op threads
    repeats: int  # timed interleaved rounds (each times every variant once)
    warmup: int  # untimed runs of every variant before timing
    json: str | None = None  # where to write the JSON record


@dataclass
class FormatResult:
    baseline_ms: float  # median of the original model in this format
    vip_ms: float  # median of the ViP model in this format
    speedup: float  # baseline_ms / vip_ms
    baseline_min_ms: float  # fastest run: the least disturbed by other processes
    vip_min_ms: float
    baseline_samples_ms: list[float] = field(default_factory=list)
    vip_samples_ms: list[float] = field(default_factory=list)


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def validate(cfg: BenchConfig) -> None:
    if cfg.input < 32:
        raise ValueError(f"--input {cfg.input} is too small: use 32 or more pixels")
    if cfg.threads < 1:
        raise ValueError(f"--threads {cfg.threads}: use 1 or more")
    if cfg.repeats < 1 or cfg.warmup < 0:
        raise ValueError(f"--repeats must be >= 1 and --warmup >= 0 (got {cfg.repeats}, {cfg.warmup})")


def _time_interleaved(variants: dict, x_by_format: dict, cfg: BenchConfig) -> dict[str, list[float]]:
    """Run every variant `warmup` times, then `repeats` rounds timing each once per round
    (each call through the torch runner at ``cfg.threads``)."""
    from vip_perception.backends.torch_backend import run_torch

    keys = list(variants)
    samples: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(cfg.warmup):
        for k in keys:
            run_torch(variants[k], x_by_format[k[1]], cfg.threads)
    for r in range(cfg.repeats):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:  # rotate the order each round
            x = x_by_format[k[1]]
            t0 = time.perf_counter()
            run_torch(variants[k], x, cfg.threads)
            samples[k].append((time.perf_counter() - t0) * 1e3)
    return samples


def benchmark(cfg: BenchConfig) -> dict:
    """Build both models, count MACs, time them; return the JSON record."""
    import torch
    import torchvision

    from vip_perception.vip import apply_vip, compare_macs, resolve_layers, vgg_aliases

    validate(cfg)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    original = getattr(torchvision.models, cfg.arch)(weights=None).eval()
    layers = resolve_layers(original, cfg.layers)  # ValueError lists valid names
    vip = apply_vip(original, layers).eval()
    with torch.device("meta"):  # MACs from shapes alone: no compute
        shape_only = getattr(torchvision.models, cfg.arch)(weights=None)
    macs = compare_macs(shape_only, apply_vip(shape_only, layers), (3, cfg.input, cfg.input))
    alias_of = {v: k for k, v in vgg_aliases(original).items()}

    variants = {}
    for fmt in FORMATS:
        for role, model in (("original", original), ("vip", vip)):
            if fmt == "channels_last":
                model = copy.deepcopy(model).to(memory_format=torch.channels_last)
            variants[(role, fmt)] = model
    x = torch.randn(1, 3, cfg.input, cfg.input)  # (1, 3, H, W)
    x_by_format = {"nchw": x.contiguous(), "channels_last": x.contiguous(memory_format=torch.channels_last)}
    load_before = _loadavg()
    samples = _time_interleaved(variants, x_by_format, cfg)
    load_after = _loadavg()

    per_format = {}
    for fmt in FORMATS:
        b, v = samples[("original", fmt)], samples[("vip", fmt)]
        mb, mv = statistics.median(b), statistics.median(v)
        per_format[fmt] = FormatResult(mb, mv, mb / mv, min(b), min(v), [round(s, 3) for s in b],
                                       [round(s, 3) for s in v])
    best_base = min(FORMATS, key=lambda f: per_format[f].baseline_ms)
    best_vip = min(FORMATS, key=lambda f: per_format[f].vip_ms)
    baseline_ms, vip_ms = per_format[best_base].baseline_ms, per_format[best_vip].vip_ms
    speedup = baseline_ms / vip_ms
    return {
        "arch": cfg.arch,
        "input": [3, cfg.input, cfg.input],
        "batch": 1,
        "layers": layers,
        "layer_aliases": [alias_of.get(n, n) for n in layers],
        "layers_spec": cfg.layers,
        "baseline_ms": baseline_ms,
        "baseline_format": best_base,
        "vip_ms": vip_ms,
        "vip_format": best_vip,
        "speedup": speedup,
        "mac_ratio": macs.ratio,
        "efficiency": speedup / macs.ratio,
        # Best against best over the fastest single runs: a cross-check when the machine is busy.
        "speedup_of_minima": (min(r.baseline_min_ms for r in per_format.values())
                              / min(r.vip_min_ms for r in per_format.values())),
        "macs_original": macs.original.total,
        "macs_vip": macs.vip.total,
        "per_layer_macs": {n: [r.original, r.vip] for n, r in macs.per_layer.items()},
        "per_format": {f: asdict(r) for f, r in per_format.items()},
        "threads": cfg.threads,
        "repeats": cfg.repeats,
        "warmup": cfg.warmup,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "cpu": machine_info()["cpu"],
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,  # 1-minute load average: above the core count means contention
        "loadavg_after": load_after,
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def format_table(rec: dict) -> str:
    """A short human-readable summary of one record."""
    names = ", ".join(rec["layer_aliases"]) or "(none)"
    lines = [
        f"{rec['arch']} {rec['input'][1]}x{rec['input'][2]}, batch 1, {rec['threads']} thread(s), "
        f"{rec['repeats']} interleaved repeats, CPU: {rec['cpu']}",
        f"ViP on {len(rec['layers'])} layer(s) [{rec['layers_spec']}]: {names}",
        f"{'format':<16}{'original ms':>13}{'ViP ms':>10}{'speedup':>10}",
    ]
    for fmt, r in rec["per_format"].items():
        lines.append(f"{fmt:<16}{r['baseline_ms']:>13.1f}{r['vip_ms']:>10.1f}{r['speedup']:>9.2f}x")
    lines.append(
        f"{'best vs best':<16}{rec['baseline_ms']:>13.1f}{rec['vip_ms']:>10.1f}{rec['speedup']:>9.2f}x"
        f"   ({rec['baseline_format']} vs {rec['vip_format']})"
    )
    lines.append(f"{'fastest runs':<16}{'':>13}{'':>10}{rec['speedup_of_minima']:>9.2f}x   (minima, best vs best)")
    lines.append(
        f"{'MACs (G)':<16}{rec['macs_original'] / 1e9:>13.2f}{rec['macs_vip'] / 1e9:>10.2f}{rec['mac_ratio']:>9.2f}x"
        f"   efficiency (speedup / mac_ratio) {rec['efficiency']:.2f}"
    )
    load = (f"1-min load average before/after: {rec['loadavg_before']} / {rec['loadavg_after']} "
            f"on {rec['cpu_count']} CPUs")
    if max(rec["loadavg_before"] or 0, rec["loadavg_after"] or 0) > (rec["cpu_count"] or 1):
        load += " -- busy machine: other processes competed, expect noisy times (see per-run samples)"
    lines.append(load)
    return "\n".join(lines)
