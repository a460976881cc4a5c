"""Original vs ViP (reference and fused) on every backend, timed side by side in one process.

``run_matrix`` builds the original torchvision model and, for each ViP layer set, its ViP
version (``apply_vip``) and the fused ViP version (``fuse_vip``). Each runs as eager NCHW and
eager channels-last, plus ONNX Runtime exports; the original also runs with packed
convolutions (the same PackedConv2d the fused model uses) and with ``torch.compile``
(freezing), so no optimisation is given to ViP alone. All variants are timed together in
interleaved rounds (order rotated every round) so drifting load on a shared machine hits all
alike, and every ViP variant's output is checked against the reference ViP model first.
Speedups are best against best: the original's fastest variant against the ViP model's
fastest, per backend and across backends. ``vip-perception bench vip --backend ... --impl ...`` runs it.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass

from vip_perception.machine import machine_info

__all__ = ["MatrixConfig", "Variant", "format_matrix", "run_matrix"]

IMPLS = ("reference", "fused")
BACKEND_KINDS = ("torch", "onnxruntime")


@dataclass
class MatrixConfig:
    arch: str = "vgg16"  # torchvision architecture (random weights)
    input: int = 224  # square input side
    layers: tuple[str, ...] = ("paper",)  # ViP layer specs (paper | all | none | comma list), one model each
    threads: int = 2  # intra-op threads for every backend
    repeats: int = 10  # timed interleaved rounds
    warmup: int = 2  # untimed runs per variant
    backends: tuple[str, ...] = BACKEND_KINDS  # which backends to include
    impls: tuple[str, ...] = IMPLS  # which ViP implementations to include
    compile: tuple[str, ...] = ("original",)  # which of original/reference/fused also run torch.compile (freezing)
    rtol: float = 1e-4  # max relative deviation from the reference ViP output
    model: object = None  # an nn.Module to use instead of torchvision's `arch` (tests, bank members)
    in_channels: int = 3  # input channels of the model


@dataclass
class Variant:
    role: str  # "original" | "vip"
    impl: str  # "original" | "reference" | "fused"
    layers: str  # ViP layer spec ("" for the original)
    backend: str  # "torch" | "onnxruntime"
    mode: str  # "eager_nchw" | "eager_channels_last" | "eager_channels_last_packed" | "compile" | "ort"
    median_ms: float = 0.0
    min_ms: float = 0.0
    samples_ms: list | None = None
    max_rel_error: float | None = None  # vs the reference ViP model (ViP variants only)
    error: str | None = None  # why this variant was not timed (build failure, outside rtol)

    @property
    def key(self) -> str:
        impl = self.impl if self.role == "original" else f"{self.impl}[{self.layers}]"
        return f"{impl}/{self.backend}/{self.mode}"


def _make_variants(cfg: MatrixConfig, impl: str, layers: str, model, x) -> list:
    """(Variant, callable | None) pairs for one model; ORT sessions and compilation happen here,
    untimed. A variant that fails to build is recorded with its error, not timed."""
    from vip_perception.backends import make_backend
    from vip_perception.fused import pack_convs

    role = "original" if impl == "original" else "vip"
    out = []

    def add(mode: str, backend: str, build) -> None:
        variant = Variant(role, impl, layers, backend, mode)
        try:
            out.append((variant, build()))
        except Exception as exc:  # noqa: BLE001 - record and go on: one broken variant must not hide the rest
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            variant.error = f"{type(exc).__name__}: {first}"[:300]
            out.append((variant, None))

    if "torch" in cfg.backends:
        add("eager_nchw", "torch", lambda: make_backend("torch", model, x, cfg.threads))
        add("eager_channels_last", "torch", lambda: make_backend("torch", model, x, cfg.threads, channels_last=True))
        if impl == "original":
            add("eager_channels_last_packed", "torch",
                lambda: make_backend("torch", _tied(model, pack_convs(model)), x, cfg.threads, channels_last=True))
        if impl in cfg.compile:
            add("compile", "torch", lambda: _compiled(model, x, cfg.threads))
    if "onnxruntime" in cfg.backends:
        add("ort", "onnxruntime", lambda: make_backend("onnxruntime", model, x, cfg.threads, verify_rtol=cfg.rtol))
    return out


def _tie_dense(src, dst) -> None:
    """Let `dst` (a copy of `src`, e.g. its ViP version) reuse src's linear layers: same values,
    half a gigabyte less per VGG copy on a shared machine. Benchmark-local; models are not trained."""
    import torch.nn as nn

    mods = dict(src.named_modules())
    for name, m in dst.named_modules():
        o = mods.get(name)
        if isinstance(m, nn.Linear) and isinstance(o, nn.Linear) and m.weight.shape == o.weight.shape \
                and m.weight.data_ptr() != o.weight.data_ptr() and bool((m.weight == o.weight).all()):
            m.weight, m.bias = o.weight, o.bias


def _tied(src, dst):
    _tie_dense(src, dst)
    return dst


def _compiled(model, x, threads: int):
    """torch.compile with freezing (constant weights folded and pre-packed), the CPU inference setting."""
    import torch._inductor.config as inductor_config

    from vip_perception.backends import make_backend

    inductor_config.freezing = True
    return make_backend("torch", copy.deepcopy(model), x, threads, compile=True)


def _time(pairs, x, cfg: MatrixConfig) -> None:
    import torch

    torch.set_num_threads(cfg.threads)
    samples = {v.key: [] for v, _ in pairs}
    for _ in range(cfg.warmup):
        for _, fn in pairs:
            fn(x)
    n = len(pairs)
    for r in range(cfg.repeats):
        for v, fn in pairs[r % n :] + pairs[: r % n]:  # rotate the order every round
            t0 = time.perf_counter()
            fn(x)
            samples[v.key].append((time.perf_counter() - t0) * 1e3)
    for v, _ in pairs:
        s = samples[v.key]
        v.median_ms, v.min_ms, v.samples_ms = statistics.median(s), min(s), [round(t, 3) for t in s]


def _best(variants, **match) -> Variant | None:
    cands = [v for v in variants if v.error is None and all(getattr(v, k) == val for k, val in match.items())]
    return min(cands, key=lambda v: v.median_ms) if cands else None


def _ratio(a: Variant | None, b: Variant | None) -> dict | None:
    if a is None or b is None:
        return None
    return {"baseline": a.key, "baseline_ms": a.median_ms, "vip": b.key, "vip_ms": b.median_ms,
            "speedup": a.median_ms / b.median_ms}


def _summary(variants: list, spec: str, impls, mac_ratio: float) -> dict:
    """Best-vs-best speed-ups of layer set ``spec``'s ViP variants against the original, per
    backend and across backends, and the efficiency (speed-up / MAC ratio)."""
    base_torch = _best(variants, role="original", backend="torch")
    base_ort = _best(variants, role="original", backend="onnxruntime")
    base_all = _best(variants, role="original")
    summary = {}
    for impl in impls:
        summary[f"{impl}_torch"] = _ratio(base_torch, _best(variants, impl=impl, layers=spec, backend="torch"))
        summary[f"{impl}_onnxruntime"] = _ratio(
            base_ort, _best(variants, impl=impl, layers=spec, backend="onnxruntime"))
        summary[f"{impl}_any_backend"] = _ratio(base_all, _best(variants, impl=impl, layers=spec))
        best = summary[f"{impl}_any_backend"]
        summary[f"{impl}_efficiency"] = None if best is None else best["speedup"] / mac_ratio
    return summary


def run_matrix(arch: str = "vgg16", input: int = 224, layers="paper", threads: int = 2,  # noqa: A002
               repeats: int = 10, **options) -> dict:
    """Time original / ViP reference / ViP fused on torch and ONNX Runtime; JSON-ready record.

    layers: one spec or a list of specs (each gets its own ViP models; the original's
    variants are built and timed once, in the same rounds). options: the other MatrixConfig
    fields (warmup, backends, impls, compile, rtol, model + in_channels to time a given
    module instead of a torchvision architecture).
    """
    import torch
    import torchvision

    from vip_perception.backends.torch_backend import run_torch
    from vip_perception.fused import fuse_vip, fused_stages, native_status
    from vip_perception.vip import apply_vip, compare_macs, resolve_layers, vgg_aliases

    specs = (layers,) if isinstance(layers, str) else tuple(layers)
    cfg = MatrixConfig(arch, input, specs, threads, repeats, **options)
    if cfg.threads < 1 or cfg.repeats < 1 or not specs:
        raise ValueError(f"threads and repeats must be >= 1 and layers non-empty "
                         f"(got {cfg.threads}, {cfg.repeats}, {specs})")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(0)
    original = cfg.model.eval() if cfg.model is not None else getattr(torchvision.models, cfg.arch)(weights=None).eval()
    x = torch.randn(1, cfg.in_channels, cfg.input, cfg.input)  # (1, C, H, W)
    alias_of = {v: k for k, v in vgg_aliases(original).items()}
    pairs = _make_variants(cfg, "original", "", original, x)
    sets = {}
    for spec in specs:
        names = resolve_layers(original, spec)  # ValueError lists the valid names
        vip = _tied(original, apply_vip(original, names).eval())
        fused = _tied(original, fuse_vip(vip).eval())
        ref_out = run_torch(vip, x, cfg.threads)  # (1, classes)
        scale = max(ref_out.abs().max().item(), 1e-30)
        new = []
        for impl, model in (("reference", vip), ("fused", fused)):
            if impl in cfg.impls:
                new += _make_variants(cfg, impl, spec, model, x)
        for v, fn in new:  # correctness first: every ViP variant against the reference ViP
            if fn is not None:
                v.max_rel_error = (fn(x).float() - ref_out).abs().max().item() / scale
                if v.max_rel_error > cfg.rtol:
                    v.error = f"output deviates from the reference ViP by {v.max_rel_error:.2e} (> rtol {cfg.rtol})"
        pairs += new
        macs = compare_macs(original, vip, (cfg.in_channels, cfg.input, cfg.input))
        sets[spec] = {
            "layers": names,
            "layer_aliases": [alias_of.get(n, n) for n in names],
            "mac_ratio": macs.ratio,
            "macs_original": macs.original.total,
            "macs_vip": macs.vip.total,
            "fused_stages": fused_stages(fused),
        }
    _time([(v, fn) for v, fn in pairs if v.error is None], x, cfg)
    variants = [v for v, _ in pairs]

    for spec, info in sets.items():
        info["summary"] = _summary(variants, spec, cfg.impls, info["mac_ratio"])
    return {
        "arch": cfg.arch,
        "input": [cfg.in_channels, cfg.input, cfg.input],
        "batch": 1,
        "layer_sets": sets,
        "summary": sets[specs[0]]["summary"] if len(specs) == 1 else None,
        "native": native_status(),
        "variants": [asdict(v) | {"key": v.key} for v in variants],
        "config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "threads": cfg.threads,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "onnxruntime_version": _ort_version(),
        "cpu": machine_info()["cpu"],
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _ort_version() -> str | None:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return None


def format_matrix(rec: dict) -> str:
    """Every variant side by side, then the best-vs-best speedups per layer set."""
    lines = [
        f"{rec['arch']} {rec['input'][1]}x{rec['input'][2]}, batch 1, {rec['threads']} thread(s), "
        f"{rec['config']['repeats']} interleaved repeats, CPU: {rec['cpu']}  [{rec['native']}]",
        f"{'variant':<46}{'median ms':>10}{'min ms':>9}{'rel err':>10}",
    ]
    for v in rec["variants"]:
        if v["error"]:
            lines.append(f"{v['key']:<46}  not timed: {v['error']}")
            continue
        err = "" if v["max_rel_error"] is None else f"{v['max_rel_error']:.1e}"
        lines.append(f"{v['key']:<46}{v['median_ms']:>10.1f}{v['min_ms']:>9.1f}{err:>10}")
    for spec, info in rec["layer_sets"].items():
        lines.append(f"ViP [{spec}] on {len(info['layers'])} layer(s), mac_ratio {info['mac_ratio']:.2f}, "
                     f"stages: {', '.join(sorted(set(info['fused_stages'].values()))) or '-'}")
        for name, r in info["summary"].items():
            if isinstance(r, dict):
                lines.append(f"  {name:<24} {r['speedup']:.2f}x  ({r['baseline']} {r['baseline_ms']:.1f} ms -> "
                             f"{r['vip']} {r['vip_ms']:.1f} ms)")
            elif r is not None:
                lines.append(f"  {name:<24} {r:.2f}")
    return "\n".join(lines)


def parse_choices(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """The comma list ``text`` as a tuple; ValueError naming ``flag`` when empty or not in ``allowed``."""
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise ValueError(f"{flag} {text!r}: choose from {', '.join(allowed)} (comma-separated)")
    return items
