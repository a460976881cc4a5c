#!/usr/bin/env python3
"""Write benchmarks/README.md from the JSON records in benchmarks/.

    python scripts/benchmarks_readme.py            # rewrite benchmarks/README.md
    python scripts/benchmarks_readme.py --check    # exit 1 when the committed file differs

Every figure in benchmarks/README.md comes from a JSON record beside it, so the text cannot
drift from the measurements. Each record must belong to a section below (``SECTIONS``): a new
JSON with no section is an error, not a silent omission. The command that produced a record is
read from the record where it stores one (``command`` or ``scenario.command``), else from
``COMMANDS``. Standard library only: this is a tool apart from the package.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = "scripts/benchmarks_readme.py"

# Records that do not store the command line that produced them.
COMMANDS = {
    "vip_vgg16_paper.json": "vip-perception bench vip --arch vgg16 --input 224 --layers paper "
                            "--threads 2 --repeats 20 --warmup 3 --json benchmarks/vip_vgg16_paper.json",
    "vip_vgg16_all.json": "vip-perception bench vip --arch vgg16 --input 224 --layers all "
                          "--threads 2 --repeats 20 --warmup 3 --json benchmarks/vip_vgg16_all.json",
    "fused_vgg16.json": "vip-perception bench vip --arch vgg16 --input 224 --threads 2 --layers paper "
                        "--layers all --backend torch,onnxruntime --impl reference,fused --repeats 15 "
                        "--warmup 2 --json benchmarks/fused_vgg16.json",
    "bank_fashion_mnist.json": "vip-perception bank show config/banks/fashion_mnist --json "
                               "benchmarks/bank_fashion_mnist.json --plot benchmarks/bank_fashion_mnist.png",
    "bank_station.json": "vip-perception bank show config/banks/station --threads 1 --json "
                         "benchmarks/bank_station.json --plot benchmarks/bank_station.png",
    "bank_station_avx2.json": "cp -r config/banks/station bank_work/station_copy && vip-perception bank profile "
                              "bank_work/station_copy --gap-ms 10 && vip-perception bank show bank_work/station_copy "
                              "--threads 1 --json benchmarks/bank_station_avx2.json "
                              "--plot benchmarks/bank_station_avx2.png",
    "bank_station_xeon.json": "cp -r config/banks/station bank_work/station_copy && vip-perception bank profile "
                              "bank_work/station_copy --gap-ms 10 && vip-perception bank show bank_work/station_copy "
                              "--threads 1 --json benchmarks/bank_station_xeon.json "
                              "--plot benchmarks/bank_station_xeon.png",
    "node_bench.json": "vip-perception bench node --json benchmarks/node_bench.json",
    "node_bench_avx2.json": "vip-perception bench node --json benchmarks/node_bench_avx2.json",
    "accuracy_coco_detector.json": "vip-perception evaluate accuracy --bank bank_work/banks/coco_detector --data "
                                   "bank_work/coco_conveyor --split test --frontier --json "
                                   "benchmarks/accuracy_coco_detector.json",
    "bank_imagefolder.json": "vip-perception data export --what fashion-mnist --out bank_work/fm64 --size 64 "
                             "--limit 1000 && vip-perception bank build --data bank_work/fm64 --out "
                             "bank_work/banks/fm64 --arch resnet18,vgg_m --input-size 64 --time-budget 20 --threads 1 "
                             "&& vip-perception bank profile bank_work/banks/fm64 --gap-ms 10 && vip-perception bank "
                             "show bank_work/banks/fm64 --json benchmarks/bank_imagefolder.json",
    "bank_coco_detector.json": "vip-perception data export --what conveyor --out bank_work/coco_conveyor --images 600 "
                               "&& vip-perception bank build --data bank_work/coco_conveyor --out "
                               "bank_work/banks/coco_detector --time-budget 60 && vip-perception bank profile "
                               "bank_work/banks/coco_detector --threads 1,2 --gap-ms 10 && vip-perception bank show "
                               "bank_work/banks/coco_detector --json benchmarks/bank_coco_detector.json",
    "vip_mobilenet_v3_large.json": "vip-perception bench vip --arch mobilenet_v3_large --input 224 --layers all "
                                   "--threads 1 --repeats 15 --warmup 3 --backend torch --impl reference,fused "
                                   "--no-compile --json benchmarks/vip_mobilenet_v3_large.json",
    "detector_conveyor.json": "OMP_NUM_THREADS=1 vip-perception evaluate detector --bank "
                              "config/banks/conveyor_detector --json benchmarks/detector_conveyor.json "
                              "--plot benchmarks/detector_conveyor.png --runs 150 --rounds 10",
    "detector_conveyor_run1.json": "OMP_NUM_THREADS=1 vip-perception evaluate detector --bank "
                                   "config/banks/conveyor_detector --json "
                                   "benchmarks/detector_conveyor_run1.json --runs 150 --rounds 10",
    "detector_conveyor_sensitivity.json": "vip-perception bank build-detector --config "
                                          "config/detector_conveyor.yaml --work WORK --out "
                                          "config/banks/conveyor_detector  # copy of WORK/sensitivity.json",
}


# ---------------------------------------------------------------- formatting helpers

def f(value, digits: int = 2) -> str:
    """A number with ``digits`` decimals; '-' for None."""
    return "-" if value is None else f"{value:.{digits}f}"


def pct(value, digits: int = 1) -> str:
    return "-" if value is None else f"{100.0 * value:.{digits}f}%"


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table; cells are converted with str and '|' is escaped."""
    def cells(row):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"
    return [cells(header), "|" + "---|" * len(header), *(cells(r) for r in rows)]


VECTOR_NAMES = {"avx512": "AVX-512", "avx2": "AVX2 only", "baseline": "no AVX2"}


def machine(d: dict) -> str:
    """The machine a record names, from whichever fields it stores."""
    m = d.get("machine") or (d.get("scenario") or {}).get("cpu") or {}
    cpu = m.get("cpu") or m.get("model") or d.get("cpu")
    vector = m.get("vector") or d.get("vector")
    if cpu and vector in VECTOR_NAMES:  # the same model name covers AVX-512 and AVX2 hosts
        cpu = f"{cpu} ({VECTOR_NAMES[vector]})"
    cores = m.get("cores") or m.get("logical_cores") or m.get("cpu_count") or d.get("cpu_count")
    torch = m.get("torch") or d.get("torch_version")
    python = m.get("python") or d.get("python")
    parts = [cpu, f"{cores} cores" if cores else None, f"torch {torch}" if torch else None,
             f"Python {python}" if python else None]
    if not cpu and m.get("platform"):
        parts.append(m["platform"])
    if d.get("onnxruntime_version"):
        parts.append(f"onnxruntime {d['onnxruntime_version']}")
    parts = [p for p in parts if p]
    return ", ".join(parts) if parts else "not recorded in the JSON"


def machine_kind(d: dict) -> str:
    """CPU model and vector capability of the machine a record ran on (e.g. 'AMD EPYC (AVX2 only)')."""
    m = d.get("machine") or (d.get("scenario") or {}).get("cpu") or {}
    cpu = m.get("cpu") or m.get("model") or "-"
    return f"{cpu} ({VECTOR_NAMES[m['vector']]})" if m.get("vector") in VECTOR_NAMES else cpu


def when(d: dict) -> str | None:
    s = d.get("scenario") or {}
    return d.get("timestamp_utc") or d.get("time") or s.get("started_utc")


def command(name: str, d: dict) -> str:
    cmd = d.get("command") or (d.get("scenario") or {}).get("command") or COMMANDS.get(name)
    if not cmd:
        raise SystemExit(f"{GENERATOR}: benchmarks/{name} stores no command and COMMANDS has "
                         "none for it; add one")
    return cmd


def provenance(name: str, d: dict) -> list[str]:
    """Command, machine and time of one record, as Markdown lines."""
    stamp = when(d)
    out = ["```", command(name, d), "```",
           f"Record `{name}`; machine: {machine(d)}" + (f"; recorded {stamp}." if stamp else ".")]
    return out


def plot(records: Path, name: str) -> list[str]:
    png = name[:-5] + ".png"
    return ["", f"![{png}]({png})"] if (records / png).is_file() else []


# ---------------------------------------------------------------- sections

def vip_vgg16(records: Path, data: dict) -> list[str]:
    out = [("Original torchvision VGG16 against its ViP version: batch 1, random weights, 224x224, "
           "interleaved repetitions after warm-up, medians; the speedup is best against best over "
           "NCHW and channels-last. Efficiency = speedup / MAC ratio."), ""]
    rows = []
    for name in ("vip_vgg16_paper.json", "vip_vgg16_all.json"):
        d = data[name]
        nchw, cl = d["per_format"]["nchw"], d["per_format"]["channels_last"]
        rows.append([f"`{d['layers_spec']}` ({', '.join(d['layer_aliases'])})",
                     f"{f(nchw['baseline_ms'], 1)} / {f(cl['baseline_ms'], 1)}",
                     f"{f(nchw['vip_ms'], 1)} / {f(cl['vip_ms'], 1)}",
                     f"**{f(d['speedup'])}x**", f(d["mac_ratio"], 3), f(d["efficiency"])])
    out += table(["ViP layers", "original ms, NCHW / channels-last", "ViP ms, NCHW / channels-last",
                  "speedup", "MAC ratio", "efficiency"], rows)
    for name in ("vip_vgg16_paper.json", "vip_vgg16_all.json"):
        d = data[name]
        out += [""] + provenance(name, d)
        out[-1] += f" {d['threads']} threads, {d['repeats']} repeats, {d['warmup']} warm-up."
    return out


def fused_vgg16(records: Path, data: dict) -> list[str]:
    name = "fused_vgg16.json"
    d = data[name]
    out = [("Every VGG16 variant in one interleaved run (medians, batch 1): the original in five forms "
           "(eager NCHW, eager channels-last, channels-last with pre-packed weights, `torch.compile`, "
           "ONNX Runtime), and for each ViP layer set the reference ViP model and the fused form "
           "(pooling read from the small map, the next convolution folded) on each backend. The "
           "error column is the largest relative difference from the reference ViP model."), ""]
    rows = [[f"`{v['key']}`", f(v["median_ms"], 1), f(v["min_ms"], 1),
             "-" if v["max_rel_error"] is None else f"{v['max_rel_error']:.1e}"]
            for v in d["variants"]]
    out += table(["variant", "median ms", "min ms", "max rel. error"], rows)
    rows = []
    for key, s in d["layer_sets"].items():
        sm = s["summary"]
        rows.append([f"`{key}`", f(s["mac_ratio"]), (f"`{sm['fused_any_backend']['baseline']}` "
                     f"{f(sm['fused_any_backend']['baseline_ms'], 1)}"),
                     f"`{sm['fused_any_backend']['vip']}` {f(sm['fused_any_backend']['vip_ms'], 1)}",
                     f"**{f(sm['fused_any_backend']['speedup'])}x**",
                     f"{f(sm['reference_onnxruntime']['speedup'])}x",
                     f"{f(sm['fused_efficiency'])}"])
    out += [""] + table(["ViP set", "MAC ratio", "fastest original (ms)", "fastest ViP (ms)",
                         "speedup", "ONNX Runtime: ViP export vs original", "fused efficiency"], rows)
    out += ["", "Native kernel: " + d["native"].split(": ", 1)[-1] + "."]
    out += [""] + provenance(name, d)
    return out


def vip_mobilenet(records: Path, data: dict) -> list[str]:
    name = "vip_mobilenet_v3_large.json"
    d = data[name]
    s = d["layer_sets"]["all"]
    sm = s["summary"]
    out = [(f"ViP on every ViP-able convolution of MobileNetV3-large ({len(s.get('layers', [])) or 'all'} "
            "depthwise, 1x1 and squeeze-excitation convolutions; the backbone of the MobileNetV3 detectors), "
            f"{d['input'][1]}x{d['input'][2]}, batch 1, {d['threads']} thread: exact, but at batch 1 these "
            "convolutions are memory-bound, so fewer MACs buy little time."), ""]
    rows = [[k.replace("_", " "), f"`{sm[k]['baseline']}` {f(sm[k]['baseline_ms'], 1)}",
             f"`{sm[k]['vip']}` {f(sm[k]['vip_ms'], 1)}", f"{f(sm[k]['speedup'])}x"]
            for k in ("reference_torch", "fused_torch") if sm.get(k)]
    out += table(["form", "fastest original (ms)", "ViP (ms)", "speedup"], rows)
    out += ["", f"MAC ratio {f(s['mac_ratio'])}x; fused efficiency (speed-up / MAC ratio) "
            f"{f(sm['fused_efficiency'])}."]
    return out + [""] + provenance(name, d)


def bank_fashion_mnist(records: Path, data: dict) -> list[str]:
    name = "bank_fashion_mnist.json"
    d = data[name]
    sel, summ = d["selection"], d["summary"]
    kinds: dict[str, int] = {}
    for c in d["candidates"]:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    hv = sel["hypervolume"]
    out = [f"The shipped classifier bank: {summ['candidates']} candidates profiled ("
           + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "). Selection: Pareto "
           f"frontier over ({sel['threads']}-thread {sel['quantile']} latency, validation accuracy), "
           f"then the ε-Pareto compact set (ε = {sel['epsilon']}, additive on accuracy); candidates "
           f"under {pct(sel['min_accuracy'], 0)} validation accuracy are never members. Latencies "
           "are the build-time profile (back to back, batch 1); the shipped manifest has since been "
           "re-profiled paced (`bank profile --gap-ms 10`), which the deadline records below list, "
           "so re-running the command prints the paced profile.", ""]
    rows = [[m["name"], m["kind"], f(m["latency_ms_p50"], 3), f(m["latency_ms_p95"], 3),
             f(m["val_accuracy"], 4), f(m["test_accuracy"], 4), f(m["macs"] / 1e6)]
            for m in d["members"]]
    out += table(["member", "kind", "p50 ms", "p95 ms", "val accuracy", "test accuracy", "MMACs"], rows)
    members = {m["name"] for m in d["members"]}
    rows = [[c["name"], f(c["latency_ms_p50"], 3), f(c["latency_ms_p95"], 3), f(c["val_accuracy"], 4),
             f(c["test_accuracy"], 4), f(c["macs"] / 1e6)]
            for c in d["candidates"] if c["kind"] == "parent" and c["name"] not in members]
    out += ["", "Trained parents that are not members:", ""]
    out += table(["candidate", "p50 ms", "p95 ms", "val accuracy", "test accuracy", "MMACs"], rows)
    ref = hv["reference"]
    out += ["", f"{summ['members']} members ({summ['vip_members']} ViP), p50 span "
            f"{f(summ['member_p50_span'], 1)}x, best test accuracy {pct(summ['best_member_test_accuracy'], 2)}, "
            f"slowest member p95 {f(summ['slowest_member_p95_ms'])} ms. Frontier: "
            + ", ".join(d["frontier"]) + f". Dominated hypervolume (reference {f(ref['latency_ms'], 2)} ms, "
            f"accuracy {ref['val_accuracy']}): {f(hv['with_vip'], 4)} with ViP variants, "
            f"{f(hv['without_vip'], 4)} without ({pct(hv['gain_fraction'])} gain)."]
    out += plot(records, name) + [""] + provenance(name, d)
    return out


def bank_backends(records: Path, data: dict) -> list[str]:
    name = "bank_backends.json"
    d = data[name]
    out = [("The shipped classifier bank on torch and on ONNX Runtime: predictions on the whole "
           "Fashion-MNIST test split, batch 1, and p50 latency measured interleaved, back to back "
           "and after a 10 ms idle gap (as between camera frames)."), ""]
    rows = [[k, v["images"], v["predictions_differ"], f"{v['max_abs_logit_diff']:.1e}"]
            for k, v in d["predictions"].items()]
    out += table(["member", "images", "predictions that differ", "max logit difference"], rows)
    header = ["member"]
    cols = []
    for gap, per in d["latency"].items():
        for t in sorted(next(iter(per.values()))):
            header.append(f"{gap.replace('gap_', 'gap ')}, {t} thread{'s' if t != '1' else ''}: torch / ORT ms")
            cols.append((gap, t))
    rows = []
    for member in d["latency"][cols[0][0]]:
        row = [member]
        for gap, t in cols:
            v = d["latency"][gap][member][t]
            row.append(f"{f(v['torch_p50_ms'], 3)} / {f(v['onnxruntime_p50_ms'], 3)} "
                       f"({f(v['p50_speedup'], 1)}x)")
        rows.append(row)
    out += [""] + table(header, rows) + [""] + provenance(name, d)
    return out


DEADLINE_RUNS = ("deadline_constant.json", "deadline_constant_seed1.json", "deadline_step.json",
                 "deadline_step_scale2.json", "deadline_constant_onnxruntime.json")


def _scenario_line(d: dict) -> str:
    s = d["scenario"]
    how = (f"{s['deadline_scale']}x the reference member's measured p95" if not s["deadline_fixed"]
           else "fixed by --deadline-ms")
    load = (f"{s['background_load']} busy background process, {s['load_pattern']}"
            + (f" on frames {s['load_frames'][0]}-{s['load_frames'][1]}" if s["load_pattern"] != "constant" else ""))
    return (f"{s['backend']}; deadline {f(s['deadline_ms'], 3)} ms ({how}); {s['frames']} frames at "
            f"{f(s['fps'], 0)} fps, seed {s['seed']}; load: {load}; margin {s['margin_ms']} ms, "
            f"selector quantile {s['latency_quantile']}, on_no_fit {s['on_no_fit']}"
            + ("; measurement pass in a shuffled order (a record from before the ordered pass)."
               if "settle_ms" not in s else
               f"; measurement pass by ascending thread count, {f(s['settle_ms'], 0)} ms settle after one that "
               "oversubscribed the cores."))


def _policy_rows(d: dict) -> list[list]:
    choices = d["scenario"]["static_choices"]
    rows = []
    for key, p in d["policies"].items():
        what = ", ".join(f"{k} ({v})" for k, v in sorted(p["member_usage"].items(),
                                                         key=lambda kv: (-kv[1], kv[0])))
        rows.append([key, what, f(p["miss_ratio"], 3), f(p["accuracy_all_frames"], 3),
                     f(p["selection_us_p99"], 1)])
    b = d["best_fixed_in_hindsight"]
    pick = choices[b["policy"]]
    rows.append(["best fixed option in hindsight", f"{pick['member']}@{pick['threads']}",
                 f(b["miss_ratio"], 3), f(b["accuracy_all_frames"], 3), "-"])
    return rows


def deadline_run(records: Path, data: dict, name: str) -> list[str]:
    d = data[name]
    out = [f"#### `{name}`", "", _scenario_line(d), ""]
    out += table(["policy", "member @ threads (frames)", "miss ratio", "accuracy, all frames",
                  "selection p99 us"], _policy_rows(d))
    rec = d.get("adaptive_recovery")
    if rec:
        out += ["", (f"Adaptive around the load step (frames {rec['onset_frame']} and "
                f"{rec['offset_frame']}): {rec['frames_to_settle_after_onset']} frames to settle and "
                f"{rec['misses_in_10_after_onset']} misses in the 10 frames after onset; "
                f"{rec['frames_to_settle_after_offset']} frames to settle and "
                f"{rec['misses_in_10_after_offset']} misses in the 10 after the load stopped.")]
    return out + plot(records, name) + [""] + provenance(name, d)


def deadline(records: Path, data: dict) -> list[str]:
    out = [("A timed stream of Fashion-MNIST test images replayed through the engine under real "
           "CPU load on the same cores. `adaptive` is the runtime, live. After it, every (member, "
           "threads) option is timed on the same frames, each after the same idle gap; the static "
           "policies, the oracle (the most accurate option that met the deadline on each frame) "
           "and the best fixed option in hindsight are scored from those measured times. A missed "
           "frame counts as wrong in \"accuracy, all frames\"."), ""]
    header = ["member"]
    rows: dict[str, list] = {}
    for name in ("deadline_constant.json", "deadline_constant_onnxruntime.json"):
        d = data[name]
        backend = d["scenario"]["backend"]
        header += [f"{backend}, 1 thread", f"{backend}, 2 threads"]
        for m in d["scenario"]["members"]:
            rows.setdefault(m["name"], [m["name"], f(m["val_accuracy"], 4)])
            rows[m["name"]] += [f(m["profile_ms"].get("1")), f(m["profile_ms"].get("2"))]
    out += [("The members' profiled p95 (ms) the selector used, paced like the stream "
            "(from the shipped manifest):"), ""]
    out += table([header[0], "val accuracy", *header[1:]], list(rows.values()))
    out += ["", "Every fixed (member, threads) option, miss ratio / accuracy over all frames:", ""]
    keys = list(data[DEADLINE_RUNS[0]]["extra_policies"])
    rows2 = []
    for key in keys:
        row = [key]
        for name in DEADLINE_RUNS:
            p = data[name]["extra_policies"].get(key)
            row.append("-" if p is None else f"{f(p['miss_ratio'], 3)} / {f(p['accuracy_all_frames'], 3)}")
        rows2.append(row)
    out += table(["option", *(n[len("deadline_"):-5] for n in DEADLINE_RUNS)], rows2)
    for name in DEADLINE_RUNS:
        out += [""] + deadline_run(records, data, name)
    return out


def bank_station(records: Path, data: dict) -> list[str]:
    name = "bank_station.json"
    d = data[name]
    sel, summ, inp = d["selection"], d["summary"], d["input"]
    build = d["machine"]
    out = [f"The station-camera classifier bank: Fashion-MNIST garments rendered as the station camera "
           f"shows them, {inp['height']}x{inp['width']} grey, trained with the camera's conditions "
           "(position, scale, rotation, lighting, belt, blur, noise; `config/bank_station.yaml`). "
           "Validation and test images are the nominal station view (the test split is reported "
           "only). Served members below, with the profile the manifest carries "
           + ("(re-profiled paced, `bank profile --gap-ms " + f"{build.get('gap_ms', 0):g}`)"
              if build.get("reprofiled") else "(the build's profile)")
           + f"; selection over {sel['threads']}-thread {sel['quantile']} latency, ε = {sel['epsilon']}, "
           f"and a ViP variant is eligible only at >= {sel.get('vip_min_speedup', 1.0)}x its parent "
           "(p50) at that thread count, and served only at the thread counts where it is (\"served at\": "
           "the member's `served_threads`; \"all\": every profiled count).", ""]
    rows = []
    for m in d["members"] + d["frontier_only"]:
        lat = m["latency_ms"]
        speed = m.get("speedup_vs_parent") or {}
        rows.append([m["name"] + ("" if m in d["members"] else " (frontier-only)"), m["kind"],
                     f(lat.get("1", {}).get("p50")), f(lat.get("1", {}).get("p95")),
                     f(lat.get("2", {}).get("p50")), f(lat.get("2", {}).get("p95")),
                     f(m["val_accuracy"], 4), f(m["test_accuracy"], 4),
                     ", ".join(m["vip_layers"]) or "-",
                     (" / ".join(f"{f(speed.get(t))}x" for t in ("1", "2") if t in speed) or "-")
                     + (" (build profile)" if m.get("speedup_profile") == "build" else ""),
                     "-" if m not in d["members"] else
                     ", ".join(f"{t}T" for t in m["served_threads"]) if m.get("served_threads") else "all"])
    out += table(["member", "kind", "p50 1T ms", "p95 1T ms", "p50 2T ms", "p95 2T ms", "val", "test",
                  "ViP layers", "speed-up vs parent (1T / 2T)", "served at"], rows)
    vips = [c for c in d["candidates"] if c["kind"] == "vip"]
    rows = [[c["name"], f(c["val_accuracy"], 4), f(c["test_accuracy"], 4), ", ".join(c["vip_layers"]),
             " / ".join(f"{f(v)}x" for _, v in sorted((c.get("speedup_vs_parent") or {}).items()))]
            for c in vips]
    out += ["", "Every ViP variant built (build profile; speed-up over its parent at 1 / 2 threads):", ""]
    out += table(["variant", "val", "test", "ViP layers", "speed-up"], rows)
    train_s = sum(c.get("train_seconds") or 0.0 for c in d["candidates"])
    out += ["", f"{summ['members']} served members ({summ['vip_members']} ViP), p50 span "
            f"{f(summ['member_p50_span'], 1)}x at {d['threads']} thread, best member test accuracy "
            f"{pct(summ['best_member_test_accuracy'], 2)}. Training time summed over the "
            f"{summ['candidates']} candidates (wall clock of one-thread processes): "
            f"{f(train_s / 3600, 2)} h."]
    return out + plot(records, name) + [""] + provenance(name, d)


STATION_ELSEWHERE = ("bank_station_avx2.json", "bank_station_xeon.json")


def bank_station_elsewhere(records: Path, data: dict) -> list[str]:
    """The shipped station bank re-profiled on other machine kinds, each beside its shipped profile."""
    shipped = data["bank_station.json"]
    out = [(f"The shipped station bank (profile from {machine_kind(shipped)}) copied and re-profiled with "
            "`bank profile --gap-ms 10` on another machine kind, which re-selects the served set from the "
            "shipped frontier's weights for that machine (`bank profile`), and `bank show` there. "
            "\"x shipped\" is that machine's 1-thread p50 over the shipped profile's; \"dominated\" names "
            "a member another one beats there in both latency and accuracy. The AVX2 record was re-selected "
            "under the earlier rule that a ViP variant pay 1.3x at every thread count; `bank profile` now "
            "serves one at the counts where it pays, which on its numbers serves `vgg_xl.vip01` at 1 thread. "
            "The Xeon record is a second profile there, re-selected under the per-count rule: `vgg_s.vip01` "
            "measured 1.28x at 1 thread this time (1.38x in the first), so it is not served."), ""]
    for name in STATION_ELSEWHERE:
        out += [f"#### {machine_kind(data[name])}: `{name}`", ""] + _station_elsewhere(records, data, name) + [""]
    return out[:-1]


def _station_elsewhere(records: Path, data: dict, name: str) -> list[str]:
    d, shipped = data[name], data["bank_station.json"]
    home = {m["name"]: m for m in shipped["members"] + shipped["frontier_only"]}
    sel = d["selection"].get("reselected") or {}
    out = []
    rows = []
    for m in d["members"] + d["frontier_only"]:
        lat, speed = m["latency_ms"], m.get("speedup_vs_parent") or {}
        ref = home.get(m["name"], {}).get("latency_ms", {}).get("1", {}).get("p50")
        rows.append([m["name"] + ("" if m in d["members"] else " (frontier-only)"), m["kind"],
                     f(lat.get("1", {}).get("p50")), f(lat.get("1", {}).get("p95")),
                     f(lat.get("2", {}).get("p50")), f(lat.get("2", {}).get("p95")),
                     "-" if not ref else f"{f(lat['1']['p50'] / ref)}x", f(m["val_accuracy"], 4),
                     " / ".join(f"{f(speed.get(t))}x" for t in ("1", "2") if t in speed) or "-",
                     m.get("dominated_by") or "-"])
    out += table(["member", "kind", "p50 1T ms", "p95 1T ms", "p50 2T ms", "p95 2T ms", "x shipped (p50 1T)",
                  "val", "speed-up vs parent (1T / 2T)", "dominated"], rows)
    out += ["", f"Served here: {', '.join(sel.get('served', [])) or '-'}; promoted "
            f"{', '.join(sel.get('promoted', [])) or 'none'}, dropped {', '.join(sel.get('dropped', [])) or 'none'}, "
            f"ViP variants below the 1.3x rule here: {', '.join(sel.get('vip_unpaid', [])) or 'none'}."]
    return out + plot(records, name) + [""] + provenance(name, d)


STATION_RUNS = ("deadline_station_step.json", "deadline_station_constant.json",
                "deadline_station_constant_15.80ms.json", "deadline_station_constant_nosense.json",
                "deadline_station_step_scale0.75.json", "deadline_station_step_scale1.0.json",
                "deadline_station_step_scale1.5.json", "deadline_station_step_avx2.json",
                "deadline_station_step_avx2_run2.json", "deadline_station_constant_avx2.json",
                "deadline_station_constant_avx2_run2.json", "deadline_station_step_xeon.json",
                "deadline_station_constant_xeon.json", "deadline_station_step_xeon_run2.json",
                "deadline_station_constant_xeon_run2.json", "deadline_station_step_xeon_run3.json",
                "deadline_station_constant_xeon_run3.json", "deadline_station_step_xeon_run4.json",
                "deadline_station_constant_xeon_run4.json", "deadline_station_step_xeon_load2.json",
                "deadline_station_constant_xeon_load2.json")


# Records from before the harness wrote its estimator (``scenario.slowdown``): what they ran.
ESTIMATOR_NOT_RECORDED = {
    "slowdown_step14.67_largest16.json": "largest of 16",  # the default from a6abbe9, run before it landed
    "slowdown_step12.69_largest16.json": "largest of 16",
    "slowdown_constant_largest16_run1.json": "largest of 16",
}


def _estimator(name: str, s: dict) -> str:
    """The adaptive engine's slowdown estimate in a record (``ESTIMATOR_NOT_RECORDED`` for the
    records from before the harness wrote it)."""
    e = s.get("slowdown")
    if not e:
        if name not in ESTIMATOR_NOT_RECORDED:
            raise SystemExit(f"{GENERATOR}: benchmarks/{name} does not say which slowdown estimate it ran; "
                             "add it to ESTIMATOR_NOT_RECORDED or re-record it")
        return ESTIMATOR_NOT_RECORDED[name]
    rank = "largest" if e["rank"] == 1 else f"{e['rank']}{'nd' if e['rank'] == 2 else 'th'} largest"
    return f"{rank} of {e['window']}"


def deadline_station(records: Path, data: dict) -> list[str]:
    out = [("The station bank at camera rate: a copy of the shipped bank re-profiled on the "
            "machine that runs the evaluation, then `evaluate deadline` at 30 fps under one busy "
            "background process (two in the `_load2` runs; step: on for the middle third of the frames; "
            "constant: throughout). The "
            "`_nosense` run repeats the constant one at the same deadline with `--no-sense-cpu-load`: "
            "the adaptive engine then learns about the neighbour from its own runs only. The `_scale` "
            "runs repeat the step one (600 frames) at other deadline scales, to show how far the oracle "
            "itself gets above the best fixed option at each; `_15.80ms` repeats the constant one at "
            "the deadline the previous constant record had. The `_avx2` runs repeat the step and "
            "constant ones on an AVX2-only EPYC, on a copy re-profiled there (`_avx2_run2`: the same step and "
            "constant commands on the same copy again, a session later); the `_xeon` runs repeat them on an "
            "Intel Xeon with AVX-512, a third machine kind, on a copy re-profiled there (`_xeon_run2`: the same "
            "commands on a fresh copy re-profiled and re-selected under the per-count ViP rule; it served the "
            "same five members; `_xeon_run3`: the run2 copy again, a session later, after a probe back from a pause "
            "is judged on its own samples, `runtime/slowdown.py`; `_xeon_run4`: the same commands on a fresh copy "
            "re-profiled the same session, which served `vgg_xl.vip01` at one thread only; `_xeon_load2`: the same "
            "commands on run4's copy with `--background-load 2`, two busy processes on the two cores, which on this "
            "kind slow a 1-thread run enough to matter, where one barely does). The estimator column "
            "is the adaptive engine's slowdown estimate (\"Which order statistic\" below); \"miss rates\" says whether "
            "its selector ranked the options that fit by accuracy x (1 - their recent miss rate) "
            "(`runtime/miss_rate.py`) or by accuracy alone, as before it."), ""]
    rows = []
    for name in STATION_RUNS:
        d = data[name]
        s, pol = d["scenario"], d["policies"]
        a, o, best = pol["adaptive"], pol["oracle"], d["best_fixed_in_hindsight"]
        loaded = [t for t in d["frames_trace"] if t["load"]]
        two = sum(1 for t in loaded if t["threads"] == 2)
        two_missed = sum(1 for t in loaded if t["threads"] == 2 and not t["met"])
        rows.append([name, machine_kind(d), str(s["background_load"]), "on" if s.get("sense_cpu_load") else "off",
                     _estimator(name, s),
                     "on" if s.get("miss_rates") else "off", f(s["deadline_ms"], 2),
                     f"{a['misses']} ({pct(a['miss_ratio'], 1)})", f(a["accuracy_all_frames"], 3),
                     f"{best['policy'].removeprefix('fixed_')} {f(best['accuracy_all_frames'], 3)}",
                     f(o["accuracy_all_frames"], 3),
                     f"{100 * (a['accuracy_all_frames'] - best['accuracy_all_frames']):+.1f}",
                     f"{100 * (o['accuracy_all_frames'] - a['accuracy_all_frames']):.1f}",
                     f"{100 * (o['accuracy_all_frames'] - best['accuracy_all_frames']):.1f}",
                     f"{two} ({two_missed} missed)"])
    out += table(["record", "machine", "busy processes", "sense_cpu_load", "estimator", "miss rates", "deadline ms",
                  "adaptive misses",
                  "adaptive accuracy",
                  "best fixed", "oracle", "adaptive - best fixed, points", "oracle - adaptive, points",
                  "oracle - best fixed, points", "adaptive 2-thread runs under load"], rows)
    for name in STATION_RUNS:
        out += [""] + deadline_run(records, data, name)
    return out


SLOWDOWN_RUNS = ("slowdown_step14.67_largest16.json", "slowdown_step14.67_second32.json",
                 "slowdown_step12.69_largest16.json", "slowdown_step12.69_second32.json",
                 "slowdown_constant_largest16_run1.json", "slowdown_constant_largest16.json",
                 "slowdown_constant_second32.json")


def slowdown_estimators(records: Path, data: dict) -> list[str]:
    out = [("Which order statistic the slowdown estimate takes (`runtime/slowdown.py`): the same "
            "station scenarios at the same deadline, run with the largest of a 16-sample window "
            "and with the 2nd largest of 32. Both sit near the 94th percentile of recent "
            "observed/profiled ratios; the second ignores one isolated stall per window. The "
            "`largest16` step records and `_run1` are the records of the station runs taken with the "
            "largest of 16 when it was the default (their deadline came from `--deadline-scale 1.2` "
            "and is the one the other run of the pair fixed); the others ran back to back "
            "with `--slowdown-window/--slowdown-rank`. \"Fallback frames\" are adaptive frames on a "
            "member below the best fixed option's."), ""]
    rows = []
    for name in SLOWDOWN_RUNS:
        d = data[name]
        s, pol = d["scenario"], d["policies"]
        a, o, best = pol["adaptive"], pol["oracle"], d["best_fixed_in_hindsight"]
        names = [m["name"] for m in s["members"]]
        acc = {m["name"]: m["val_accuracy"] for m in s["members"]}
        pick = s["static_choices"][best["policy"]]
        below = sum(1 for t in d["frames_trace"] if acc[names[t["member"]]] < acc[pick["member"]])
        two_quiet = sum(1 for t in d["frames_trace"] if t["threads"] == 2 and not t["load"])
        rows.append([name, s["load_pattern"], f(s["deadline_ms"], 2), _estimator(name, s),
                     f"{a['misses']} ({pct(a['miss_ratio'], 1)})", f(a["accuracy_all_frames"], 3),
                     str(below), str(two_quiet),
                     f"{pick['member']}@{pick['threads']} {f(best['accuracy_all_frames'], 3)}",
                     f(o["accuracy_all_frames"], 3)])
    out += table(["record", "load", "deadline ms", "estimator", "adaptive misses", "adaptive accuracy",
                  "fallback frames", "2-thread frames, no load", "best fixed", "oracle"], rows)
    out += [""]
    for name in SLOWDOWN_RUNS:
        out += provenance(name, data[name]) + [""]
    return out[:-1]


PORTABILITY_RUNS = ("portability_detector.json", "portability_detector_nocal.json",
                    "portability_classifier.json", "portability_classifier_nocal.json",
                    "portability_detector_avx2.json", "portability_detector_nocal_avx2.json",
                    "portability_classifier_avx2.json", "portability_classifier_nocal_avx2.json",
                    "portability_detector_xeon.json", "portability_detector_nocal_xeon.json",
                    "portability_classifier_xeon.json", "portability_classifier_nocal_xeon.json")

# Records from before the demo wrote the served profile's machine: both banks were profiled on
# AVX-512 EPYC hosts, and these runs were on one too.
PROFILE_NOT_RECORDED = {name: "AMD EPYC (AVX-512)" for name in PORTABILITY_RUNS[:4]}
# The detector bank's manifest predates the "vector" field; it was profiled on an AVX-512 EPYC
# (issue 13 measured its parent at 28 ms there and about 60 ms on an AVX2 one).
VECTOR_NOT_IN_MANIFEST = {"conveyor_detector": "avx512"}


def _profiled_on(name: str, d: dict) -> str:
    """The machine the served bank's profile was taken on, as ``machine`` names it."""
    m = d.get("profile_machine")
    if m is None:
        if name not in PROFILE_NOT_RECORDED:
            raise SystemExit(f"{GENERATOR}: benchmarks/{name} does not say where its bank was profiled; "
                             "re-record it with the current demo")
        return PROFILE_NOT_RECORDED[name]
    m = dict(m)
    m.setdefault("vector", VECTOR_NOT_IN_MANIFEST.get(Path(d["bank"]).name))
    return f"{m['cpu']} ({VECTOR_NAMES[m['vector']]})" if m.get("vector") in VECTOR_NAMES else m["cpu"]


def _calibration_ratio(d: dict) -> str:
    """The calibration's median observed/profiled ratio from the node's log line, or '-'."""
    line = d.get("calibration") or ""
    found = re.search(r"median ratio ([\d.]+)", line)
    return f"x{found.group(1)}" if found else "-"


def portability(records: Path, data: dict) -> list[str]:
    out = [("The node served from a 768x432 video at 12.5 fps, made with `vip-perception data video "
            "--scene belt --seconds 80 --out bank_work/videos/belt_768x432.avi` (and `--scene station` "
            "for the classifier), through `vip-perception demo --video`, with and without start-up "
            "calibration. Misses count frames whose result came after the deadline. The shipped "
            "banks' profiles were taken on an AVX-512 EPYC; the `_avx2` runs serve them unchanged on "
            "an AVX2-only EPYC, the machine kind where issue 13 saw the detector miss 6.5% of frames, and the "
            "`_xeon` runs on an Intel Xeon with AVX-512. "
            "\"Calibrated\" is the start-up calibration's median observed/profiled ratio (from the "
            "node's log)."), ""]
    rows = []
    for name in PORTABILITY_RUNS:
        d = data[name]
        o = d["options"]
        mix = d["phases"]["quiet"]["member_share"]
        rows.append([name, Path(d["bank"]).name, machine_kind(d), _profiled_on(name, d), f(o["deadline_ms"], 0),
                     "on" if o["calibrate"] else "off", _calibration_ratio(d) if o["calibrate"] else "-",
                     d["results"], d["misses"], pct(d["miss_fraction"], 2),
                     ", ".join(f"{k} {pct(v, 0)}" for k, v in mix.items())])
    out += table(["record", "bank", "served on", "profiled on", "deadline ms", "calibration", "calibrated",
                  "results", "misses", "miss ratio", "member mix"], rows)
    for name in PORTABILITY_RUNS:
        out += [""] + provenance(name, data[name])
    return out


EMULATED_RUNS = ("portability_emulated_native.json", "portability_emulated_cal.json",
                 "portability_emulated_nocal.json", "portability_emulated_slow_cal.json",
                 "portability_emulated_slow_nocal.json")


EARLY_FRAMES = 30  # a wrong profile shows before the estimator has learned this machine


def _profile_scale(scenario: dict) -> float | None:
    """The factor an emulated profile was scaled by (None: this machine's own profile). Records
    from before the scenario named its profile's machine tell it by the copy's directory name."""
    machine = scenario.get("profile_machine")
    if machine is not None:
        return machine.get("emulated_scale")
    return 0.5 if "foreign" in scenario["bank"] else None


def portability_emulated(records: Path, data: dict) -> list[str]:
    out = [("A profile from another machine kind, emulated on one machine: `python "
            "scripts/emulate_machine_kind.py bank_work/station_copy bank_work/station_foreign --scale 0.5` "
            "copies the re-profiled station bank with every profiled latency halved, which is what "
            "serving it on a machine kind 2x slower than the one that profiled it looks like (the "
            "ratio measured between the AVX-512 and AVX2 hosts for the detector); `--scale 2` into "
            "`bank_work/station_slow` is the other way round, a bank profiled on a kind 2x slower. Then "
            "`evaluate deadline` on the copies and on the bank itself, no background load, with a deadline "
            "at which the largest member does not fit, with and without start-up calibration. A profile "
            "that claims too much speed costs misses until the estimator has learned this machine (the "
            f"first {EARLY_FRAMES} frames column); one that claims too little costs accuracy."), ""]
    rows = []
    for name in EMULATED_RUNS:
        d = data[name]
        s, a = d["scenario"], d["policies"]["adaptive"]
        cal = s.get("calibration") or {}
        factors = cal.get("thread_factors") or {}
        scale = _profile_scale(s)
        total = sum(a["member_usage"].values())
        mix = [kv for kv in sorted(a["member_usage"].items(), key=lambda kv: -kv[1]) if kv[1] >= 0.01 * total][:3]
        rows.append([name, "this machine's" if scale is None else f"x{scale:g} (emulated)",
                     "on" if s.get("calibrate") else "off", f(s["deadline_ms"], 1),
                     ", ".join(f"{t}T {f(v, 2)}" for t, v in sorted(factors.items())) or "-",
                     a["misses"], sum(1 for r in d["frames_trace"][:EARLY_FRAMES] if not r["met"]),
                     pct(a["miss_ratio"], 1), f(a["accuracy_all_frames"], 3),
                     f(d["policies"]["oracle"]["accuracy_all_frames"], 3),
                     ", ".join(f"{k} {pct(v / total, 0)}" for k, v in mix)])
    out += table(["record", "profile", "calibration", "deadline ms", "calibrated factors", "adaptive misses",
                  f"of them in the first {EARLY_FRAMES} frames", "miss ratio", "accuracy, all frames", "oracle",
                  "adaptive's top options"], rows)
    for name in EMULATED_RUNS:
        out += [""] + provenance(name, data[name])
    return out


DEMO_RUNS = ("demo_station_load.json", "demo_station_load_run2.json", "demo_station_load_run3.json",
             "demo_station_load2.json", "demo_station_load_avx2.json", "demo_station_load_run2_avx2.json",
             "demo_station_load2_avx2.json", "demo_station_load_xeon.json", "demo_station_load_run2_xeon.json")


def demo_station(records: Path, data: dict) -> list[str]:
    first = data[DEMO_RUNS[0]]
    o = first["options"]
    rows, runs = [], Counter()
    for name in DEMO_RUNS:
        d = data[name]
        kind = machine_kind(d)
        runs[kind, d["options"]["load"]] += 1
        for phase, p in d["phases"].items():
            threads = ", ".join(f"{t}: {pct(v, 0)}" for t, v in p.get("threads_share", {}).items()) or "-"
            allowed = ", ".join(f"{t}: {pct(v, 0)}" for t, v in p.get("max_threads_share", {}).items()) or "-"
            others = (p.get("others_cores") or {}).get("p50")
            rows.append([kind, d["options"]["load"], runs[kind, d["options"]["load"]], phase, p["results"], p["misses"],
                         ", ".join(f"{k} {pct(v, 0)}" for k, v in p["member_share"].items() if v >= 0.005),
                         threads, allowed, "-" if others is None else f(others)])
    accuracy = ", ".join(pct(data[name]["station_accuracy"]) for name in DEMO_RUNS)
    out = [f"`scripts/demo` at {f(o['fps'], 0)} fps on the station camera with the station bank and its "
           f"{f(o['deadline_ms'], 0)} ms deadline, with 1 busy process from half-way (run "
           "several times in a row) and with 2, on an AVX-512 and on an AVX2-only EPYC, and with 1 on an Intel Xeon "
           "with AVX-512 (the bank's "
           "shipped profile is the AVX-512 one): the member mix without and under load, the thread counts the "
           "runs used, the thread counts the CPU-load reading allowed, and the cores the other processes "
           "(camera, this demo's monitor, the load) used at the median reading. Members under 0.5% "
           f"left out. Accuracy at the station: {accuracy}. Why one busy process barely changes the member "
           "on the AVX-512 EPYC and does on the other two: docs/design.md, \"The demo under load\".", ""]
    out += table(["machine", "busy processes", "run", "phase", "results", "misses", "member mix", "threads used",
                  "threads allowed", "others' cores p50"], rows)
    for name in DEMO_RUNS:
        out += [""] + provenance(name, data[name])
    return out


def preprocess_load(records: Path, data: dict) -> list[str]:
    name = "preprocess_under_load.json"
    d = data[name]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads by default)"
                     for b in d["numpy_blas"]) or "none found"
    out = [(f"`Bank.preprocess` for the station bank ({d['input'][0]}x{d['input'][1]} RGB roi to "
            f"{d['model_input'][1]}x{d['model_input'][2]} grey), one call every {f(d['gap_ms'], 0)} ms, "
            "against the formulation it replaced (three RGB planes averaged with the same area "
            "weights at NumPy's default BLAS thread count, then made grey), run for run, on a quiet "
            f"machine and beside one busy process. NumPy's BLAS: {blas}."), ""]
    rows = [[phase, impl, st["runs"], f(st["p50_ms"]), f(st["p90_ms"]), f(st["p99_ms"]), f(st["max_ms"]),
             st["over_10ms"]]
            for phase, impls in d["phases"].items() for impl, st in impls.items()]
    out += table(["phase", "implementation", "runs", "p50 ms", "p90 ms", "p99 ms", "max ms", "over 10 ms"], rows)
    return out + [""] + provenance(name, d)


def inference_thread(records: Path, data: dict) -> list[str]:
    name = "inference_thread.json"
    d = data[name]
    out = [(f"Model time by the thread that runs it, one run every {f(d['gap_ms'], 0)} ms, each layout in a "
            "fresh process: loaded and run on the main thread (the deadline harness, `bank profile`); loaded on "
            "the main thread and run on another (the node before `runtime/serving_thread.py`); loaded and run on "
            "the node's serving thread. CPU / wall near 1: only one core worked. "
            f"{d['runs']} timed runs per row."), ""]
    rows = [[layout, option, f(v["p50_ms"]), f(v["p95_ms"]), f(v["cpu_over_wall_p50"])]
            for layout, options in d["layouts"].items() for option, v in options.items()]
    out += table(["layout", "member@threads", "p50 ms", "p95 ms", "CPU / wall (p50)"], rows)
    return out + [""] + provenance(name, d)


def pass_interference(records: Path, data: dict) -> list[str]:
    name = "pass_interference.json"
    d = data[name]
    out = [("Why `evaluate deadline` orders its measurement pass by thread count and settles after it: "
            f"with one busy background process (the evaluation's), a 1-thread run of each member is timed "
            "after a 2-thread run of it, or after a 1-thread run as the control, with the same idle time in "
            f"between; {d['rounds']} rounds, shuffled. \"Slow\": more than {f(d['slow_ms'], 0)} ms over the "
            "member's control p50."), ""]
    rows = [[member, st["before_threads"], f(st["wait_ms"], 0), f(st["p50_ms"]), f(st["p90_ms"]), f(st["p99_ms"]),
             pct(st["slow_share"])]
            for member, r in d["members"].items() for st in r["conditions"].values()]
    out += table(["member @ 1 thread", "run before it (threads)", "idle between, ms", "p50 ms", "p90 ms",
                  "p99 ms", "slow"], rows)
    return out + [""] + provenance(name, d)


def gc_pause(records: Path, data: dict) -> list[str]:
    name = "gc_pause.json"
    d = data[name]
    a, b = d["full_collection"], d["full_collection_frozen"]
    out = [("One full garbage collection (`gc.collect()`) in a process that imported what the node "
            f"imports and loaded `{d['bank']}`, before and after `runtime.collector.freeze_start_up` "
            "(which the node calls once its start-up is done, and `evaluate deadline` before it loads the "
            "bank). CPython runs such "
            "a collection on its own every so often, inside whichever frame it lands in."), ""]
    out += table(["", "objects the collector walks", "full collection, median ms", "max ms"], [
        ["start-up objects live", str(d["tracked_objects_with_bank"]), f(a["median_ms"], 1), f(a["max_ms"], 1)],
        ["start-up objects frozen", str(d["tracked_objects_with_bank"] - d["frozen_objects"]),
         f(b["median_ms"], 4), f(b["max_ms"], 4)]])
    out += ["", f"{d['tracked_objects_after_imports']} of the objects exist after the imports alone, "
            "before the bank is loaded."]
    return out + [""] + provenance(name, d)


def _member_rows(d: dict) -> list[list]:
    """Rows of a `bank show --json` record: served members, then frontier-only ones."""
    rows = []
    for m in d["members"] + d["frontier_only"]:
        lat, speed = m["latency_ms"], m.get("speedup_vs_parent") or {}
        rows.append([m["name"] + ("" if m in d["members"] else " (frontier-only)"), m["kind"],
                     f(lat.get("1", {}).get("p50")), f(lat.get("2", {}).get("p50")),
                     f(m["val_accuracy"], 4), f(m["test_accuracy"], 4), len(m["vip_layers"]),
                     " / ".join(f"{f(speed.get(t))}x" for t in ("1", "2") if t in speed) or "-"])
    return rows


def _demo_line(d: dict) -> str:
    o, mix = d["options"], {}
    for p in d["phases"].values():
        for k, v in p["member_share"].items():
            mix[k] = mix.get(k, 0.0) + v * p["results"] / max(1, d["results"])
    score = d.get("detection") or {}
    scored = (f"; precision {pct(score['precision'])}, recall {pct(score['recall'])} at IoU 0.5"
              if score.get("precision") is not None else "")
    if d.get("station_accuracy") is not None:
        scored += (f"; accuracy on the station camera's view {pct(d['station_accuracy'])} (trained on the plain "
                   "export, not on that view)")
    return (f"Served by the node (`demo`, {f(o['fps'], 1)} fps, deadline {f(o['deadline_ms'], 0)} ms, "
            f"{o['load']} busy process(es) from half-way): {d['results']} results, {d['misses']} misses "
            f"({pct(d['miss_fraction'], 2)}); member mix "
            + ", ".join(f"{k} {pct(v, 0)}" for k, v in mix.items()) + scored + ".")


OWN_DATA_RUNS = ("bank_imagefolder.json", "demo_imagefolder.json", "bank_coco_detector.json",
                 "accuracy_coco_detector.json", "demo_coco_detector.json")


def own_data(records: Path, data: dict) -> list[str]:
    header = ["member", "kind", "p50 1T ms", "p50 2T ms", "val", "test", "ViP layers",
              "speed-up vs parent (1T / 2T)"]
    d = data["bank_imagefolder.json"]
    out = [(f"`bank build --data` on an ImageFolder of Fashion-MNIST at {d['input']['height']}x"
            f"{d['input']['width']} (`data export --what fashion-mnist --size 64 --limit 1000`: 1000 images "
            "per split), parents `resnet18` (torchvision, from scratch) and `vgg_m`, `--time-budget 20`, "
            "then `bank profile --gap-ms 10`. Accuracy is top-1 on val / test."), ""]
    out += table(header, _member_rows(d)) + ["", _demo_line(data["demo_imagefolder.json"]), ""]
    out += provenance("bank_imagefolder.json", d) + [""] + provenance("demo_imagefolder.json",
                                                                      data["demo_imagefolder.json"])
    d = data["bank_coco_detector.json"]
    out += ["", ("`bank build --data` on a COCO directory on disk (`data export --what conveyor --images 600`: "
                 "420 / 90 / 90 belt scenes, 320x240, 10 classes), one command, `--time-budget 60`: a "
                 "`fasterrcnn_resnet18_fpn` parent trained from scratch and its ViP variants. Accuracy is "
                 "COCO mAP@0.5 (pycocotools) on val / test."), ""]
    out += table(header, _member_rows(d))
    parent = next(m for m in d["members"] + d["frontier_only"] + d["candidates"] if m["kind"] == "parent")
    best = [m for m in d["members"] + d["frontier_only"] if m["kind"] == "vip"
            and m["val_accuracy"] >= parent["val_accuracy"] - 0.03]
    if best:
        b = max(best, key=lambda m: (m.get("speedup_vs_parent") or {}).get("1", 0.0))
        out += ["", (f"Fastest ViP member within 0.03 mAP@0.5 of the parent (val): {b['name']}, "
                     f"{f((b.get('speedup_vs_parent') or {}).get('1'))}x at 1 thread, "
                     f"{f(b['val_accuracy'] - parent['val_accuracy'], 4)} val / "
                     f"{f(b['test_accuracy'] - parent['test_accuracy'], 4)} test mAP@0.5.")]
    a = data["accuracy_coco_detector.json"]
    rows = [[m["name"], f(m.get("map50"), 4), f(m.get("map"), 4), f(m.get("latency_ms_p50"))] for m in a["members"]]
    out += ["", f"`evaluate accuracy` on the {a.get('split', 'test')} split through the serving path:", ""]
    out += table(["member", "mAP@0.5", "mAP@[.5:.95]", "p50 ms"], rows)
    out += ["", _demo_line(data["demo_coco_detector.json"]), ""]
    for name in OWN_DATA_RUNS[2:]:
        out += provenance(name, data[name]) + [""]
    return out


def build_memory(records: Path, data: dict) -> list[str]:
    name = "build_memory.json"
    d = data[name]
    rep = d["reported"]
    rows = [[key, r["images"], f(r["decoded_rgb_mib"], 0), f(r["wall_s"], 0), f(r["peak"]["main_rss_mib"], 0),
             f(r["peak"][f"{rep}_mib"], 0)] for key, r in d["sizes"].items()]
    out = [("Peak memory of the same one-command build (`bank build --data DIR --arch vgg_s --input-size 64`) "
            "on an ImageFolder and one with 10x its images (224x224 Fashion-MNIST PNGs), sampled every "
            f"0.2 s over the build and its DataLoader workers ({rep}: shared pages split between "
            "the processes)."), ""]
    out += table(["set", "images", "decoded MiB", "wall s", "peak main RSS MiB", f"peak {rep} MiB"], rows)
    ratio = d["ratio_large_over_small"]
    batches = " and ".join(f"{r.get('batch_size')} ({key})" for key, r in d["sizes"].items())
    out += ["", (f"Large / small: {f(ratio.get('images'), 1)}x the images, {f(ratio.get(rep), 2)}x the peak "
                 f"{rep} and {f(ratio.get('main_rss'), 2)}x the build process's peak RSS; the large set decoded "
                 f"is {f(d.get('large_decoded_over_peak'), 1)}x the large build's peak. The two plans differ (training "
                 f"batch {batches} images; small val/test splits are held in memory, large ones streamed "
                 "through workers), so the builds are alike, not identical; per-phase peaks are in the record.")]
    return out + [""] + provenance(name, d)


NODE_BENCH_RUNS = ("node_bench.json", "node_bench_avx2.json")


def node_bench(records: Path, data: dict) -> list[str]:
    out = ["The node's own cost per frame without inference, and stamp-to-result latency with the real "
           "engine: a camera process and the node over DDS. One record per machine kind; the AVX2-only "
           "one was taken after every torch call of the node moved onto its serving thread.", ""]
    for name in NODE_BENCH_RUNS:
        out += [f"#### `{name}`", ""] + _node_bench_run(name, data[name]) + [""]
    return out[:-1]


def _node_bench_run(name: str, d: dict) -> list[str]:
    ov, e2e, dl = d["overhead"], d["end_to_end"], d["delivery"]
    img = d["image"]
    out = [(f"Machine: {machine(d)}; {img['width']}x{img['height']} {img['encoding']}; DDS: {d['dds']}; "
            f"RMW: {d['rmw']}. Overhead = {ov['note'].split(' = ', 1)[-1]}."), ""]
    rows = [[k, f(v["median"], 3), f(v["p99"], 3), v["n"]] for k, v in ov["stages_ms"].items()]
    n = ov["node_overhead_ms"]
    rows.append(["**node overhead**", f"**{f(n['median'], 2)}**", f(n["p99"], 2), n["n"]])
    out += table(["stage", "median ms", "p99 ms", "frames"], rows)
    lat, eng = e2e["latency_stamp_to_published_ms"], e2e["engine_ms"]
    out += [""] + table(["end to end (real engine)", "value"], [
        ["stamp to published result",
         f"median {f(lat['median'], 1)} ms, p99 {f(lat['p99'], 1)} ms ({lat['n']} frames)"],
        ["engine", f"median {f(eng['median'], 2)} ms, p99 {f(eng['p99'], 2)} ms"],
        ["deadline / misses", f"{e2e['deadline_ms']} ms / {e2e['deadline_misses']}"],
        ["members used", ", ".join(f"{k} {v}" for k, v in e2e["member_usage"].items())],
    ])
    if "stages_ms" in e2e:  # per-stage breakdown of stamp -> published (TimingRecord fields)
        out += ["", f"Where stamp -> published goes, per frame (executor {d.get('executor', '?')}):", ""]
        out += table(["stage", "median ms", "p99 ms"],
                     [[k, f(v["median"], 3), f(v["p99"], 3)] for k, v in e2e["stages_ms"].items()])
    labels = {"fastdds_defaults": "Fast DDS defaults",
              "fastdds_shm_profile": "Fast DDS with config/fastdds_shm_profile.xml"}
    rows = [[labels.get(k, k), f"{v['received']} / {v['sent']}", f(v["rate_hz"], 0)]
            for k, v in dl.items()]
    out += ["", "Delivery of best-effort images between two processes:", ""]
    out += table(["DDS configuration", "frames received / sent", "Hz"], rows)
    return out + [""] + provenance(name, d)


def detector(records: Path, data: dict) -> list[str]:
    out = [("ViP Faster R-CNN members on the synthetic conveyor scenes (Fashion-MNIST garments "
           "composited on a moving belt): COCO mAP from pycocotools on the test scenes; batch 1; "
           "latency of the whole detector and of the backbone alone; \"rest\" = p50 minus "
           "backbone p50 (region proposals, RoIAlign, box head, NMS). ViP members run fused, as "
           "the bank serves them. Speedup and loss are against the parent."), ""]
    for name in ("detector_conveyor.json", "detector_conveyor_run1.json"):
        d = data[name]
        rows = []
        for m in sorted(d["members"], key=lambda m: -m["latency_ms_p50"]):
            rows.append([m["name"], len(m["vip_layers"]), f(m["map50"], 4), f(m["map"], 4),
                         f(m["latency_ms_p50"]), f(m["latency_ms_p95"]), f(m["backbone_latency_ms_p50"]),
                         f(m["latency_ms_p50"] - m["backbone_latency_ms_p50"]),
                         f"{f(m['speedup'])}x" if "speedup" in m else "-",
                         f(m["map50_loss"], 4) if "map50_loss" in m else "-"])
        threads = f"{d['threads']} thread" + ("s" if d["threads"] != 1 else "")
        out += [f"#### `{name}`", "", (f"{d['scenes']} {d['split']} scenes, {threads}, "
                f"{d['latency_runs']} timed runs per member."), ""]
        out += table(["member", "ViP layers", "mAP@0.5", "mAP@[.5:.95]", "p50 ms", "p95 ms",
                      "backbone p50 ms", "rest ms", "speedup", "mAP@0.5 loss"], rows)
        out += plot(records, name) + [""] + provenance(name, d) + [""]
    name = "detector_conveyor_sensitivity.json"
    d = data[name]
    out += [f"#### `{name}`", "", (f"The build's per-layer sensitivity pass: validation mAP@0.5 drop "
            f"when ViP is applied to one backbone convolution alone (base {f(d['base_map50'], 4)}, "
            f"{d['scenes']} scenes)."), ""]
    rows = [[k, f(d["macs"][k] / 1e6, 1), f(v, 4)] for k, v in d["drop"].items()]
    out += table(["layer", "MMACs", "mAP@0.5 drop"], rows) + [""] + provenance(name, d)
    return out


def fuzz(records: Path, data: dict) -> list[str]:
    name = "fuzz.json"
    d = data[name]
    out = [(f"Generated Image and CompressedImage messages (encodings, sizes, steps, lengths, "
           f"endianness; random, truncated, empty and oversized JPEG/PNG payloads) through "
           f"conversion and preprocessing (image backend {d['backend']}, OpenCV {d['opencv']}, "
           f"seed {d['seed']}). An escape is any exception other than a counted rejection."
           + (" Message classes handed to the conversion: " + ", ".join(
               f"{k} {v}" for k, v in d["message_classes"].items()) + " (stand-ins only for "
              "bytes / bytearray payloads, which the real classes turn into arrays)."
              if d.get("message_classes") else "")), ""]
    out += table(["cases", "escapes", "converted and preprocessed", "rejected", "seconds"],
                 [[d["cases"], f"**{d['escapes']}**", d["converted_ok"], d["rejected"], d["seconds"]]])
    reasons = sorted(d["reasons"].items(), key=lambda kv: -kv[1])
    out += [""] + table(["rejection reason", "cases"], reasons)
    out += [""] + table(["case kind", "cases"], sorted(d["case_kinds"].items()))
    return out + [""] + provenance(name, d)


def _soak_rows(d: dict) -> list[tuple[str, str]]:
    c, fr, pc, rss, fds = d["config"], d["frames"], d["parameter_changes"], d["rss"], d["fds"]
    return [
        ("run", (f"{f(d['run_s'] / 60, 1)} min, {c['width']}x{c['height']} at {f(c['fps'], 0)} Hz, "
                f"deadline {c['deadline_ms']} ms")),
        ("crashes", f"**{d['crashes']}**"),
        ("frames published / received / processed",
         f"{fr['camera_published']} / {fr['node_received']} / {fr['processed']}"),
        ("results received (every processed frame published)",
         f"{fr['results_received_by_soak']} ({'yes' if d['every_processed_frame_published'] else 'no'})"),
        ("deadline misses / dropped stale / replaced by newer",
         f"{fr['deadline_misses']} / {fr['dropped_stale']} / {fr['replaced_by_newer']}"),
        ("node RSS after warm-up, MB: reference / final", f"{f(rss['ref_mb'], 0)} / {f(rss['final_mb'], 0)}"),
        ("RSS growth after warm-up, final / peak",
         f"{pct(rss['growth_pct'] / 100)} / {pct(rss['peak_growth_pct'] / 100)}"),
        ("open file descriptors first / last / max", f"{fds['first']} / {fds['last']} / {fds['max']}"),
        ("parameter requests sent / answered", f"{pc['sent']} / {pc['answered']}"),
        ("accepted / rejected as expected / unexpected",
         f"{pc['accepted']} / {pc['rejected_as_expected']} / {len(pc['unexpected_outcomes'])}"),
        ("answer ms p50 / p95 / max",
         f"{f(pc['answer_ms_p50'], 1)} / {f(pc['answer_ms_p95'], 1)} / {f(pc['answer_ms_max'], 1)}"),
        ("bank swaps accepted / sent, answer p50 ms",
         f"{pc['bank_swaps_accepted']} / {pc['bank_swaps_sent']}, {f(pc['bank_swap_answer_ms_p50'], 1)}"),
    ]


def soak(records: Path, data: dict) -> list[str]:
    names = ("soak_30min.json", "soak_8min.json", "soak_station_4min.json")
    first = data[names[0]]["config"]
    out = [(f"The camera source and the node as two processes over DDS for minutes, a parameter "
           f"change every {f(first['change_s'], 0)} s and a bank swap every "
           f"{first['swap_every']} changes (among them values that must be rejected); RSS growth "
           f"is measured after a {f(first['warmup_s'], 0)} s warm-up. `soak_station_4min.json` serves the "
           f"station bank instead of the default one, a change every {f(data[names[2]]['config']['change_s'], 0)} s "
           f"(its RSS row is what docs/troubleshooting.md cites)."), ""]
    rows = [list(t) for t in _soak_rows(data[names[0]])]
    for name in names[1:]:
        for row, (_, v) in zip(rows, _soak_rows(data[name])):
            row.append(v)
    out += table(["figure", *(f"`{n}`" for n in names)], rows)
    for name in names:
        out += plot(records, name) + [""] + provenance(name, data[name])
    return out


def startup(records: Path, data: dict) -> list[str]:
    name = "startup_launch.json"
    d = data[name]
    out = [(f"{d['what']}. The package is colcon-built from the checkout into a new workspace "
            f"({d['colcon_build_s']} s); each preset is launched, then stopped with SIGINT. The "
            f"native kernels come from the cache (`{d['kernel_cache']}`, keyed by source and CPU, "
            f"not install path) that the install filled: `{d['native_kernels']}`."), ""]
    rows = [[preset, f"`{p['params_file']}`", p["topic"], f"**{f(p['seconds_to_first_result'])}**",
             p["launch_exit"], len(p["left_running_after_sigint"])] for preset, p in d["presets"].items()]
    out += table(["preset", "params file", "topic", "s to first result", "launch exit after SIGINT",
                  "processes left"], rows)
    return out + [""] + provenance(name, d)


# (title, records, render). Every benchmarks/*.json must appear in exactly one section.
SECTIONS = (
    ("ViP on VGG16", ("vip_vgg16_paper.json", "vip_vgg16_all.json"), vip_vgg16),
    ("Fused ViP and ONNX Runtime on VGG16", ("fused_vgg16.json",), fused_vgg16),
    ("ViP on MobileNetV3's depthwise convolutions", ("vip_mobilenet_v3_large.json",), vip_mobilenet),
    ("The Fashion-MNIST model bank", ("bank_fashion_mnist.json",), bank_fashion_mnist),
    ("Torch and ONNX Runtime on the shipped bank", ("bank_backends.json",), bank_backends),
    ("The station-camera classifier bank", ("bank_station.json",), bank_station),
    ("The station bank on other machine kinds", STATION_ELSEWHERE, bank_station_elsewhere),
    ("The station bank at camera rate", STATION_RUNS, deadline_station),
    ("Which order statistic: the slowdown estimate", SLOWDOWN_RUNS, slowdown_estimators),
    ("Portability: a video, with and without start-up calibration", PORTABILITY_RUNS, portability),
    ("Portability: a profile from another machine kind (emulated)", EMULATED_RUNS, portability_emulated),
    ("The demo at camera rate", DEMO_RUNS, demo_station),
    ("Inference on the serving thread", ("inference_thread.json",), inference_thread),
    ("Preprocessing beside a busy process", ("preprocess_under_load.json",), preprocess_load),
    ("The measurement pass beside a busy process", ("pass_interference.json",), pass_interference),
    ("A full garbage collection in a serving process", ("gc_pause.json",), gc_pause),
    ("Your own data: an ImageFolder and a COCO directory", OWN_DATA_RUNS, own_data),
    ("Build memory on a ten times larger data set", ("build_memory.json",), build_memory),
    ("Deadline runtime under CPU load", DEADLINE_RUNS, deadline),
    ("Node overhead and DDS delivery", NODE_BENCH_RUNS, node_bench),
    ("ViP Faster R-CNN on conveyor scenes", ("detector_conveyor.json", "detector_conveyor_run1.json",
                                             "detector_conveyor_sensitivity.json"), detector),
    ("Reliability: malformed messages", ("fuzz.json",), fuzz),
    ("Reliability: soak", ("soak_30min.json", "soak_8min.json", "soak_station_4min.json"), soak),
    ("Start-up: ros2 launch to the first result", ("startup_launch.json",), startup),
)


def load_records(records: Path) -> dict[str, dict]:
    """Every *.json in ``records``; each must belong to a section, and each section's must exist."""
    data = {}
    for path in sorted(records.glob("*.json")):
        try:
            data[path.name] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise SystemExit(f"{GENERATOR}: {path}: not valid JSON ({exc})") from exc
    covered = {n for _, names, _ in SECTIONS for n in names}
    stray = sorted(set(data) - covered)
    if stray:
        raise SystemExit(f"{GENERATOR}: no section for {', '.join(stray)}; add one to SECTIONS")
    missing = sorted(covered - set(data))
    if missing:
        raise SystemExit(f"{GENERATOR}: records named in SECTIONS are missing: {', '.join(missing)}")
    return data


def render(records: Path) -> str:
    """The full text of benchmarks/README.md for the records in ``records``."""
    data = load_records(records)
    out = ["# Measured figures", "",
           f"<!-- Generated by {GENERATOR} from benchmarks/*.json: do not edit by hand. -->", "",
           ("Every number below is read from a JSON record in this folder, produced by the command "
           "shown with it, on the machine it names. Latencies belong to the machine that measured "
           "them: re-run a command to measure yours. Why the runtime is built as it is: "
           "[docs/design.md](../docs/design.md)."), ""]
    out += [f"- [{title}](#{_anchor(title)})" for title, _, _ in SECTIONS]
    for title, _, fn in SECTIONS:
        out += ["", f"## {title}", ""] + fn(records, data)
    return "\n".join(out).rstrip() + "\n"


def _anchor(title: str) -> str:
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return keep.replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=Path, default=ROOT / "benchmarks",
                        help="folder of JSON records (default: benchmarks/)")
    parser.add_argument("--out", type=Path, default=None,
                        help="README to write or check (default: RECORDS/README.md)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the README differs from what would be generated")
    args = parser.parse_args(argv)
    out = args.out or args.records / "README.md"
    text = render(args.records)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else ""
        if current != text:
            print(f"{out} is out of date with the JSON records: run python {GENERATOR}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
