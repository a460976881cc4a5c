"""Original vs ViP (reference and fused) on every backend, timed side by side in one process.

``run_matrix`` builds the original torchvision model, its ViP version (``apply_vip``) and the
fused ViP version (``fuse_vip``), runs each as eager NCHW, eager channels-last and (for the
original, optionally for the others) ``torch.compile``, plus ONNX Runtime exports of all
three, and times every variant in interleaved rounds (order rotated each round) so drifting
load on a shared machine hits all alike. Speedups are best against best: the original's
fastest variant among those compared against the ViP model's fastest. Every ViP variant's
output is checked against the reference ViP model (eager NCHW) before timing.
The CLI (``bench vip --backend ... --impl ...``) is meant to call run_matrix.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass

__all__ = ["MatrixConfig", "Variant", "run_matrix", "format_matrix"]

IMPLS = ("reference", "fused")
BACKEND_KINDS = ("torch", "onnxruntime")


@dataclass
class MatrixConfig:
    arch: str = "vgg16"  # torchvision architecture (random weights)
    input: int = 224  # square input side
    layers: str = "paper"  # ViP layer spec (paper | all | none | comma list)
    threads: int = 2  # intra-op threads for every backend
    repeats: int = 10  # timed interleaved rounds
    warmup: int = 2  # untimed runs per variant
    backends: tuple[str, ...] = BACKEND_KINDS  # which backends to include
    impls: tuple[str, ...] = IMPLS  # which ViP implementations to include
    compile_vip: bool = False  # also torch.compile the ViP models (fails for fused stages in torch 2.14's Inductor)
    compile: bool = True  # include torch.compile of the original (and of ViP when compile_vip)
    rtol: float = 1e-4  # max relative deviation from the reference ViP output
    model: object = None  # an nn.Module to use instead of torchvision's `arch` (tests, bank members)
    in_channels: int = 3  # input channels of the model


@dataclass
class Variant:
    role: str  # "original" | "vip"
    impl: str  # "original" | "reference" | "fused"
    backend: str  # "torch" | "onnxruntime"
    mode: str  # "eager_nchw" | "eager_channels_last" | "compile" | "ort"
    median_ms: float = 0.0
    min_ms: float = 0.0
    samples_ms: list | None = None
    max_rel_error: float | None = None  # vs the reference ViP model (ViP variants only)

    @property
    def key(self) -> str:
        return f"{self.impl}/{self.backend}/{self.mode}"


def _build(cfg: MatrixConfig):
    import torch
    import torchvision

    from vip_perception.fused import fuse_vip
    from vip_perception.vip import apply_vip, resolve_layers

    torch.manual_seed(0)
    original = cfg.model.eval() if cfg.model is not None else getattr(torchvision.models, cfg.arch)(weights=None).eval()
    layers = resolve_layers(original, cfg.layers)
    vip = apply_vip(original, layers).eval()
    models = {"original": original}
    if "reference" in cfg.impls or "fused" not in cfg.impls:
        models["reference"] = vip
    if "fused" in cfg.impls:
        models["fused"] = fuse_vip(vip).eval()
    return original, layers, models


def _make_variants(cfg: MatrixConfig, models: dict, x):
    """(Variant, callable) pairs; building ORT sessions and compiling happen here, untimed.

    The original gets every execution we know that speeds it up: eager NCHW and
    channels-last, channels-last with packed convolutions (the same PackedConv2d the fused
    ViP model uses) and torch.compile with freezing (weights pre-packed by Inductor).
    """
    from vip_perception.backends import make_backend
    from vip_perception.fused import pack_convs

    out = []
    for impl, model in models.items():
        role = "original" if impl == "original" else "vip"
        if "torch" in cfg.backends:
            out.append((Variant(role, impl, "torch", "eager_nchw"), make_backend("torch", model, x, cfg.threads)))
            out.append((Variant(role, impl, "torch", "eager_channels_last"),
                        make_backend("torch", model, x, cfg.threads, channels_last=True)))
            if impl == "original":
                out.append((Variant(role, impl, "torch", "eager_channels_last_packed"),
                            make_backend("torch", pack_convs(model), x, cfg.threads, channels_last=True)))
            if cfg.compile and (role == "original" or cfg.compile_vip):
                out.append((Variant(role, impl, "torch", "compile"), _compiled(model, x, cfg.threads)))
        if "onnxruntime" in cfg.backends:
            out.append((Variant(role, impl, "onnxruntime", "ort"),
                        make_backend("onnxruntime", model, x, cfg.threads, verify_rtol=cfg.rtol)))
    return out


def _compiled(model, x, threads: int):
    """torch.compile with freezing (constant weights folded and pre-packed), the CPU inference setting."""
    import torch._inductor.config as inductor_config

    from vip_perception.backends import make_backend

    inductor_config.freezing = True
    return make_backend("torch", copy.deepcopy(model), x, threads, compile=True)


def _time(variants, x, cfg: MatrixConfig) -> None:
    import torch

    torch.set_num_threads(cfg.threads)
    samples = {v.key: [] for v, _ in variants}
    for _ in range(cfg.warmup):
        for _, fn in variants:
            fn(x)
    n = len(variants)
    for r in range(cfg.repeats):
        for v, fn in variants[r % n :] + variants[: r % n]:
            t0 = time.perf_counter()
            fn(x)
            samples[v.key].append((time.perf_counter() - t0) * 1e3)
    for v, _ in variants:
        s = samples[v.key]
        v.median_ms, v.min_ms, v.samples_ms = statistics.median(s), min(s), [round(t, 3) for t in s]


def _best(variants, **match) -> Variant | None:
    cands = [v for v in variants if all(getattr(v, k) == val for k, val in match.items())]
    return min(cands, key=lambda v: v.median_ms) if cands else None


def _ratio(a: Variant | None, b: Variant | None) -> dict | None:
    if a is None or b is None:
        return None
    return {"baseline": a.key, "baseline_ms": a.median_ms, "vip": b.key, "vip_ms": b.median_ms,
            "speedup": a.median_ms / b.median_ms}


def run_matrix(arch: str = "vgg16", input: int = 224, layers: str = "paper", threads: int = 2,  # noqa: A002
               repeats: int = 10, **options) -> dict:
    """Time original / ViP reference / ViP fused on torch and ONNX Runtime; JSON-ready record.

    options: the other MatrixConfig fields (warmup, backends, impls, compile, compile_vip, rtol,
    model + in_channels to time a given module instead of a torchvision architecture).
    """
    import torch
    import torchvision

    from vip_perception.bench.vip_bench import cpu_name
    from vip_perception.fused import fused_stages, native_status
    from vip_perception.vip import apply_vip, compare_macs, vgg_aliases

    cfg = MatrixConfig(arch, input, layers, threads, repeats, **options)
    if cfg.threads < 1 or cfg.repeats < 1:
        raise ValueError(f"threads and repeats must be >= 1 (got {cfg.threads}, {cfg.repeats})")
    torch.set_num_threads(cfg.threads)
    original, layer_names, models = _build(cfg)
    x = torch.randn(1, cfg.in_channels, cfg.input, cfg.input)  # (1, C, H, W)
    with torch.inference_mode():
        ref_out = apply_vip(original, layer_names).eval()(x) if "reference" not in models else models["reference"](x)
    pairs = _make_variants(cfg, models, x)
    scale = max(ref_out.abs().max().item(), 1e-30)
    for v, fn in pairs:  # correctness first: every ViP variant against the reference ViP
        if v.role == "vip":
            v.max_rel_error = (fn(x).float() - ref_out).abs().max().item() / scale
            if v.max_rel_error > cfg.rtol:
                raise RuntimeError(f"{v.key} deviates from the reference ViP by {v.max_rel_error:.2e} (> {cfg.rtol})")
    _time(pairs, x, cfg)
    variants = [v for v, _ in pairs]

    macs = compare_macs(original, apply_vip(original, layer_names), (cfg.in_channels, cfg.input, cfg.input))
    base_torch = _best(variants, role="original", backend="torch")
    base_all = _best(variants, role="original")
    summary = {}
    for impl in cfg.impls:
        summary[f"{impl}_torch"] = _ratio(base_torch, _best(variants, impl=impl, backend="torch"))
        summary[f"{impl}_onnxruntime"] = _ratio(_best(variants, role="original", backend="onnxruntime"),
                                                _best(variants, impl=impl, backend="onnxruntime"))
        summary[f"{impl}_any_backend"] = _ratio(base_all, _best(variants, impl=impl))
    alias_of = {v: k for k, v in vgg_aliases(original).items()}
    return {
        "arch": cfg.arch,
        "input": [cfg.in_channels, cfg.input, cfg.input],
        "batch": 1,
        "layers_spec": cfg.layers,
        "layers": layer_names,
        "layer_aliases": [alias_of.get(n, n) for n in layer_names],
        "mac_ratio": macs.ratio,
        "macs_original": macs.original.total,
        "macs_vip": macs.vip.total,
        "fused_stages": fused_stages(models["fused"]) if "fused" in models else {},
        "native": native_status(),
        "summary": summary,
        "variants": [asdict(v) | {"key": v.key} for v in variants],
        "config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "threads": cfg.threads,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "onnxruntime_version": _ort_version(),
        "cpu": cpu_name(),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _ort_version() -> str | None:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return None


def format_matrix(rec: dict) -> str:
    """Every variant side by side, then the best-vs-best speedups."""
    lines = [
        f"{rec['arch']} {rec['input'][1]}x{rec['input'][2]}, {rec['threads']} thread(s), ViP [{rec['layers_spec']}] "
        f"on {len(rec['layers'])} layer(s), mac_ratio {rec['mac_ratio']:.2f}, CPU: {rec['cpu']}",
        f"{'variant':<42}{'median ms':>10}{'min ms':>9}{'rel err':>10}",
    ]
    for v in rec["variants"]:
        err = "" if v["max_rel_error"] is None else f"{v['max_rel_error']:.1e}"
        lines.append(f"{v['role'] + ':' + v['key']:<42}{v['median_ms']:>10.1f}{v['min_ms']:>9.1f}{err:>10}")
    for name, r in rec["summary"].items():
        if r:
            lines.append(f"{name:<24} {r['speedup']:.2f}x  ({r['baseline']} {r['baseline_ms']:.1f} ms -> "
                         f"{r['vip']} {r['vip_ms']:.1f} ms)")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    """Flags for a CLI command running run_matrix (the lead may fold these into `bench vip`)."""
    parser.add_argument("--arch", default="vgg16", help="torchvision architecture (random weights)")
    parser.add_argument("--input", type=int, default=224, help="square input size (default 224)")
    parser.add_argument("--layers", default="paper", help="paper | all | none | comma list of layers")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every backend (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed interleaved rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per variant (default 2)")
    parser.add_argument("--backend", default="torch,onnxruntime", help="comma list of: torch, onnxruntime")
    parser.add_argument("--impl", default="reference,fused", help="comma list of: reference, fused")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile of the original")
    parser.add_argument("--json", metavar="PATH", help="write the record as JSON to PATH")


def _choices(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise ValueError(f"{flag} {text!r}: choose from {', '.join(allowed)} (comma-separated)")
    return items


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    try:
        rec = run_matrix(args.arch, args.input, args.layers, args.threads, args.repeats, warmup=args.warmup,
                         backends=_choices(args.backend, BACKEND_KINDS, "--backend"),
                         impls=_choices(args.impl, IMPLS, "--impl"), compile=not args.no_compile)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_matrix(rec))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rec, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
