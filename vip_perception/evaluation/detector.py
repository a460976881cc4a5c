"""Detector evaluation (`vip-perception evaluate detector`): mAP and latency of each member.

Per member: COCO mAP@0.5 and mAP@[.5:.95] on the test scenes (Fashion-MNIST test half B, never
used for training or selection), batch-1 latency p50/p95 of the whole detector and of the
backbone alone (measured here, interleaved across members so machine noise is shared), and for
each ViP member its speed-up and mAP loss against its parent. The backbone share of the
parent's time bounds what ViP can give the whole detector (Amdahl). Members are scored as the bank
serves them: ViP backbones fused (``bank.inference_module``), exact to float rounding.
"""
from __future__ import annotations

import os
import time

from vip_perception.bank.provenance import portable_path
from vip_perception.machine import machine_info


def evaluate_bank(bank, scenes: int, threads: int, runs: int, rounds: int, progress: bool) -> dict:
    """Per-member mAP@0.5, mAP@[.5:.95] on ``scenes`` test scenes (0: the build's count) and
    batch-1 latency at ``threads`` (``runs`` timed runs in ``rounds`` interleaved rounds; 0 runs:
    the manifest's profile), with speed-up and mAP loss against each ViP member's parent.
    Returns the JSON-ready result (bank, machine, members)."""
    import torch

    from vip_perception.bank.profile import profile_models
    from vip_perception.data.conveyor import ConveyorConfig, ConveyorScenes, coco_dict
    from vip_perception.fused import fused_stages
    from vip_perception.models.detector import BackboneCall, DetectorCall
    from vip_perception.tasks.detection import evaluate_map

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
        from vip_perception.bank.records import LatencyProfile

        cands = bank.manifest["build"]["candidates"]
        lat = {m.name: (LatencyProfile.from_dict(cands[m.name]["latency"][str(threads)]),
                        LatencyProfile.from_dict(cands[m.name]["backbone_latency"][str(threads)]))
               for m in bank.members}
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
    return {"bank": portable_path(bank.path), "name": bank.name, "split": "test", "scenes": n,
            "threads": threads, "latency_source": source, "latency_runs": runs,
            "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "members": list(rows.values())}


def plot(result: dict, path: str) -> None:
    """Whole-detector and backbone p50 latency against test mAP@0.5, ViP members linked to parents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {r["name"]: r for r in result["members"]}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series = (("latency_ms_p50", "o", "whole detector"), ("backbone_latency_ms_p50", "s", "backbone only"))
    for key, marker, label in series:
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
