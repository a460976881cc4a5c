"""`vip-perception evaluate detector --bank DIR --json PATH`: mAP and latency of each member.

Per member: COCO mAP@0.5 and mAP@[.5:.95] on the test scenes (Fashion-MNIST test half B, never
used for training or selection), batch-1 latency p50/p95 of the whole detector and of the
backbone alone (measured here, interleaved across members so machine noise is shared), and for
each ViP member its speed-up and mAP loss against its parent. The backbone share of the
parent's time bounds what ViP can give the whole detector (Amdahl), which is why the paper's
1.8x on VGG16 Faster R-CNN needs a backbone-dominated detector. Members are scored as the bank
serves them: ViP backbones fused (``bank.inference_module``), exact to float rounding.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bank", required=True, help="detector bank directory (manifest.json)")
    parser.add_argument("--json", default=None, help="write the per-member results here")
    parser.add_argument("--scenes", type=int, default=0, help="test scenes to score (default: the build's test_scenes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for inference and latency")
    parser.add_argument("--runs", type=int, default=60, help="timed batch-1 runs per member (0 = use the manifest's profile)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaving rounds for the latency runs")
    parser.add_argument("--plot", default=None, help="also write a latency vs mAP@0.5 plot (PNG) here")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def evaluate_bank(bank, scenes: int, threads: int, runs: int, rounds: int, progress: bool) -> dict:
    import torch

    from ..bank.profile import profile_models
    from ..machine import machine_info
    from ..data.conveyor import ConveyorConfig, ConveyorScenes, coco_dict
    from ..fused import fused_stages
    from ..tasks.detection import evaluate_map
    from ..models.detector import BackboneCall, DetectorCall

    recipe = bank.manifest.get("build", {}).get("recipe", {})
    scene_cfg = dict(recipe.get("scene", {}))
    if "light_range" in scene_cfg:
        scene_cfg["light_range"] = tuple(scene_cfg["light_range"])
    test = ConveyorScenes("test", ConveyorConfig(**scene_cfg))
    n = scenes or int(recipe.get("test_scenes", 500))
    gt = coco_dict(test, n)
    s = bank.input_spec
    torch.set_num_threads(threads)
    maps = {m.name: evaluate_map(m.module, test, n, s.channels, gt) for m in bank.members}
    shape = (1, s.channels, s.height, s.width)
    if runs > 0:
        kw = dict(threads=[threads], runs=runs, rounds=min(rounds, runs), warmup=3, progress=progress)
        whole = profile_models({m.name: DetectorCall(m.module) for m in bank.members}, shape, **kw)
        back = profile_models({m.name: BackboneCall(m.module) for m in bank.members}, shape, **kw)
        lat = {k: (whole[k][threads], back[k][threads]) for k in whole}
        source = "measured"
    else:
        from ..bank.records import LatencyProfile

        cands = bank.manifest["build"]["candidates"]
        lat = {m.name: (LatencyProfile.from_dict(cands[m.name]["latency"][str(threads)]),
                        LatencyProfile.from_dict(cands[m.name]["backbone_latency"][str(threads)])) for m in bank.members}
        source = "manifest"
    rows = {}
    for m in bank.members:
        w, b = lat[m.name]
        rows[m.name] = {"name": m.name, "parent": m.parent, "vip_layers": m.vip_layers,
                        "map50": maps[m.name]["map50"], "map": maps[m.name]["map"],
                        "latency_ms_p50": w.p50, "latency_ms_p95": w.p95,
                        "backbone_latency_ms_p50": b.p50, "backbone_latency_ms_p95": b.p95,
                        "backbone_share": b.p50 / w.p50 if w.p50 > 0 else None,
                        "backbone_macs": m.macs,
                        "fused_stages": fused_stages(m.module)}  # how the ViP layers are served
    for r in rows.values():
        p = rows.get(r["parent"]) if r["parent"] else None
        if p is not None:
            r["speedup"] = p["latency_ms_p50"] / r["latency_ms_p50"]
            r["backbone_speedup"] = p["backbone_latency_ms_p50"] / r["backbone_latency_ms_p50"]
            r["map50_loss"] = p["map50"] - r["map50"]
            r["map_loss"] = p["map"] - r["map"]
    return {"bank": os.path.abspath(bank.path), "name": bank.name, "split": "test", "scenes": n,
            "threads": threads, "latency_source": source, "latency_runs": runs,
            "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "members": list(rows.values())}


def run(args) -> int:
    from ..bank.records import BankError
    from ..bank import load_bank

    if args.threads < 1 or args.runs < 0 or args.scenes < 0:
        print("error: --threads must be >= 1, --runs and --scenes >= 0", file=sys.stderr)
        return 2
    try:
        bank = load_bank(args.bank)
        if bank.task != "detection":
            raise BankError(f"{args.bank}: a {bank.task} bank; `evaluate detector` scores detection banks")
    except BankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = evaluate_bank(bank, args.scenes, args.threads, args.runs, args.rounds, not args.no_progress)
    print(f"{'member':10s} {'mAP@.5':>7s} {'mAP':>7s} {'p50 ms':>8s} {'bb ms':>8s} {'speedup':>8s} {'loss@.5':>8s}  vip layers")
    for r in result["members"]:
        sp = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        loss = f"{r['map50_loss']:+.4f}" if "map50_loss" in r else "-"
        print(f"{r['name']:10s} {r['map50']:7.4f} {r['map']:7.4f} {r['latency_ms_p50']:8.2f} "
              f"{r['backbone_latency_ms_p50']:8.2f} {sp:>8s} {loss:>8s}  {','.join(r['vip_layers']) or '-'}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
            fh.write("\n")
    if args.plot:
        plot(result, args.plot)
    return 0


def plot(result: dict, path: str) -> None:
    """Whole-detector and backbone p50 latency against test mAP@0.5, ViP members linked to parents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {r["name"]: r for r in result["members"]}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, marker, label in (("latency_ms_p50", "o", "whole detector"), ("backbone_latency_ms_p50", "s", "backbone only")):
        ax.scatter([r[key] for r in rows.values()], [r["map50"] for r in rows.values()], marker=marker, label=label)
        for r in rows.values():
            ax.annotate(r["name"], (r[key], r["map50"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            p = rows.get(r["parent"]) if r["parent"] else None
            if p is not None:
                ax.plot([p[key], r[key]], [p["map50"], r["map50"]], lw=0.5, color="grey")
    ax.set_xlabel(f"batch-1 latency p50, ms ({result['threads']} thread(s))")
    ax.set_ylabel(f"test mAP@0.5 ({result['scenes']} scenes)")
    ax.set_title(f"{result['name']}: ViP Faster R-CNN members")
    ax.grid(alpha=0.3)
    ax.legend()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
