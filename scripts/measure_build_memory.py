#!/usr/bin/env python3
"""Peak memory of the one-command bank build (`vip-perception bank build --data DIR`) on a small
ImageFolder and on one with at least ten times its images: a streaming build stays flat.

    python scripts/measure_build_memory.py --small DIR --large DIR [--out benchmarks/build_memory.json]
    python scripts/measure_build_memory.py --make 50000 --scratch DIR [--out ...]

``--make N`` exports Fashion-MNIST at 224x224 (`vip-perception data export --what fashion-mnist
--size 224 --limit L`) into SCRATCH/large (about N images over train, val and test) and
SCRATCH/small (at most N/10), and reuses an export already there with the same limit. Each set is
then built by the same command (``build_command``: one vgg_s parent at 64x64, one training
thread, two decoding workers, ``--time-budget`` minutes: training, ViP sensitivity and
fine-tuning, evaluation, profiling and selection) in a subprocess whose process tree (the build
and its DataLoader workers) is sampled every ``--interval`` seconds with psutil:

- ``main_rss``: the build process's resident set;
- ``tree_rss``: the sum of the tree's resident sets (forked workers share pages with the build,
  so this counts shared pages more than once: an upper bound);
- ``tree_pss`` / ``tree_uss``: the sum of proportional / unique set sizes (``memory_full_info``,
  Linux): PSS splits each shared page between the processes mapping it, so the tree's PSS is
  its physical footprint. It is the figure reported (``reported``), ``tree_rss`` where PSS
  cannot be read. A sample reads the listed processes one after another: a worker that starts
  or ends meanwhile makes that sample low, never high.

The JSON names the machine, each set's image counts, bytes on disk and decoded as RGB uint8
(the memory an in-memory build would need for the raw images alone), each build's exit code,
wall seconds, plan, peaks (MiB) overall and per build phase, a coarse timeline, and the ratio of
the large set's peaks to the small set's. Paths in it are repository-relative (``<external>/NAME``
outside the checkout; ``<tmp>`` for the build's temporary directory).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
MIB = float(1 << 20)
MIN_RATIO = 10.0  # the large set has at least this many times the small set's images
# Images per split the Fashion-MNIST export can give (train/val: a 90/10 split of the 60k training
# set; test: the 10k test set); --limit caps every split at L.
FASHION_SPLITS = {"train": 54000, "val": 6000, "test": 10000}
MIN_EXPORT_LIMIT = 10  # the export keeps at least an image per class
EXPORT_SIZE = 224
PEAKS = ("main_rss", "main_pss", "tree_rss", "tree_pss", "tree_uss")
PHASE_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO phase (\w+) \.\.\.$")
TIMELINE_POINTS = 100
PATH_FLAGS = ("--small", "--large", "--scratch", "--out")


class MeasureError(ValueError):
    """A request this script cannot measure; the message names the flag or path and what to do."""


# ---------------------------------------------------------------------------------------------
# Data sets


def export_total(limit: int) -> int:
    """Images the Fashion-MNIST export writes over all splits with ``--limit limit`` (0: all)."""
    return sum(n if limit <= 0 else min(limit, n) for n in FASHION_SPLITS.values())


def export_limits(total: int) -> tuple[int, int]:
    """(small, large) per-split ``--limit`` for ``--make total``: the large export has the
    fewest images >= ``total``, the small one the most <= total / MIN_RATIO, so the ratio of
    their totals is at least MIN_RATIO. MeasureError when ``total`` cannot be exported."""
    most = export_total(0)
    least = int(MIN_RATIO * export_total(MIN_EXPORT_LIMIT))
    if not least <= total <= most:
        raise MeasureError(f"--make {total}: give between {least} and {most} images (Fashion-MNIST's splits "
                           f"hold {most}; the small set, {MIN_RATIO:g}x fewer, needs {MIN_EXPORT_LIMIT} per split)")
    limits = range(MIN_EXPORT_LIMIT, max(FASHION_SPLITS.values()) + 1)
    large = next(n for n in limits if export_total(n) >= total)
    small = max(n for n in limits if export_total(n) * MIN_RATIO <= export_total(large))
    return small, large


def ensure_export(out: Path, limit: int, env: dict) -> None:
    """Fashion-MNIST at EXPORT_SIZE, ``limit`` per split, in ``out``: exported now by the CLI, or
    kept when ``out`` holds that export already. MeasureError when ``out`` holds something else
    or the export fails."""
    stamp = out / "export.json"
    want = {split: min(limit, n) for split, n in FASHION_SPLITS.items()}
    if stamp.is_file():
        had = json.loads(stamp.read_text())
        if had.get("size") == EXPORT_SIZE and had.get("images") == want:
            return
        raise MeasureError(f"{out}: holds another export ({stamp}); remove it or give another --scratch")
    cmd = [sys.executable, "-m", "vip_perception.cli", "data", "export", "--what", "fashion-mnist",
           "--size", str(EXPORT_SIZE), "--limit", str(limit), "--out", str(out), "--no-progress"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MeasureError(f"data export to {out} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    print(f"exported {sum(want.values())} images to {out} in {time.monotonic() - t0:.0f} s", file=sys.stderr)


def dataset_stats(root: Path) -> dict:
    """Images (per top-level folder), bytes on disk and decoded as RGB uint8 (sum of H*W*3 read
    from the image headers) of an ImageFolder. MeasureError when ``root`` holds no image."""
    from PIL import Image

    from vip_perception.data.user_data import IMAGE_EXTENSIONS

    per_split: dict[str, int] = {}
    disk = decoded = 0
    sizes: dict[str, int] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(folder, name)
            with Image.open(path) as im:
                w, h = im.size
            disk += os.path.getsize(path)
            decoded += h * w * 3
            top = Path(path).relative_to(root).parts[0]
            per_split[top] = per_split.get(top, 0) + 1
            sizes[f"{h}x{w}"] = sizes.get(f"{h}x{w}", 0) + 1
    if not per_split:
        raise MeasureError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}); give an ImageFolder")
    splits = per_split if set(per_split) <= {"train", "val", "test"} else {"all": sum(per_split.values())}
    return {"images": sum(per_split.values()), "per_split": splits, "image_sizes": sizes,
            "disk_mib": round(disk / MIB, 1), "decoded_rgb_mib": round(decoded / MIB, 1)}


# ---------------------------------------------------------------------------------------------
# Sampling a process tree


def sample_tree(root: psutil.Process) -> dict | None:
    """Memory of ``root`` and its live descendants now, bytes: main_rss, main_pss, tree_rss,
    tree_pss, tree_uss (the PSS/USS keys are None where ``memory_full_info`` cannot give them)
    and the process count; None when ``root`` is gone."""
    try:
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    out = {"main_rss": 0, "main_pss": None, "tree_rss": 0, "tree_pss": 0, "tree_uss": 0, "processes": 0}
    for p in procs:
        try:
            rss = p.memory_info().rss
            try:
                full = p.memory_full_info()
                pss, uss = getattr(full, "pss", None), full.uss
            except psutil.AccessDenied:
                pss = uss = None
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            if p is root:
                return None
            continue  # a worker that ended between the listing and the read
        out["tree_rss"] += rss
        out["processes"] += 1
        for key, value in (("tree_pss", pss), ("tree_uss", uss)):
            out[key] = None if value is None or out[key] is None else out[key] + value
        if p is root:
            out["main_rss"], out["main_pss"] = rss, pss
    return out


@dataclass
class Watch:
    """What ``watch`` saw: samples ``(seconds since the start, sample_tree dict)``, the start's
    wall time (time.time()), the exit code (None: killed at the timeout) and wall seconds."""

    samples: list[tuple[float, dict]] = field(default_factory=list)
    wall_start: float = 0.0
    exit_code: int | None = None
    wall_s: float = 0.0

    def peaks_mib(self, since: float = float("-inf"), until: float = float("inf")) -> dict:
        """Largest value of each of PEAKS over the samples in [since, until) (None: never read),
        MiB, and the most processes seen at once."""
        chosen = [s for t, s in self.samples if since <= t < until]
        out = {}
        for key in PEAKS:
            values = [s[key] for s in chosen if s[key] is not None]
            out[f"{key}_mib"] = round(max(values) / MIB, 1) if values else None
        out["processes_max"] = max((s["processes"] for s in chosen), default=0)
        return out

    def timeline(self, key: str, points: int = TIMELINE_POINTS) -> list[list[float]]:
        """``[[seconds, MiB], ...]``: the largest ``key`` in each of up to ``points`` equal spans."""
        if not self.samples:
            return []
        span = max(self.samples[-1][0], 1e-9) / points
        buckets: dict[int, tuple[float, float]] = {}
        for t, s in self.samples:
            if s[key] is not None:
                b = min(points - 1, int(t / span))
                buckets[b] = max(buckets.get(b, (t, 0.0)), (t, s[key] / MIB), key=lambda v: v[1])
        return [[round(t, 1), round(mib, 1)] for t, mib in (buckets[b] for b in sorted(buckets))]


def watch(proc: subprocess.Popen, interval: float = 0.2, timeout: float | None = None,
          into: Watch | None = None) -> Watch:
    """Sample ``proc``'s tree every ``interval`` s until it exits; at ``timeout`` s its process
    group is killed (start it with ``start_new_session=True``) and exit_code is None; so it is
    when this process is interrupted (the exception goes on). ``into``: the Watch to fill (another
    thread may read its samples as they arrive)."""
    w = into if into is not None else Watch()
    w.wall_start = time.time()
    root, start = psutil.Process(proc.pid), time.monotonic()
    try:
        while proc.poll() is None:
            now = time.monotonic() - start
            if timeout is not None and now > timeout:
                break
            sample = sample_tree(root)
            if sample is not None:
                w.samples.append((now, sample))
            time.sleep(interval)
    finally:  # the timeout, or an interrupt of this script: the build's own session does not see it
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            w.exit_code = proc.returncode
        w.wall_s = round(time.monotonic() - start, 1)
    return w


def phase_starts(log_text: str, wall_start: float) -> dict[str, float]:
    """Seconds since ``wall_start`` at which the build log's "phase NAME ..." lines were written."""
    starts = {}
    for line in log_text.splitlines():
        m = PHASE_LINE.match(line.strip())
        if m:
            stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time
            starts[m.group(2)] = round(stamp - wall_start, 1)
    return starts


def phase_peaks(w: Watch, starts: dict[str, float]) -> dict[str, dict]:
    """Peaks per build phase: "plan" (detecting the data, measuring, planning) up to the first
    phase, then each phase up to the next one's start."""
    names = ["plan", *sorted(starts, key=starts.get)]
    edges = [float("-inf"), *(starts[n] for n in names[1:]), float("inf")]
    return {n: {"start_s": None if n == "plan" else starts[n], **w.peaks_mib(edges[i], edges[i + 1])}
            for i, n in enumerate(names)}


# ---------------------------------------------------------------------------------------------
# One build


def build_command(data: str, out: str, budget_min: float, threads: int, workers: int) -> list[str]:
    """The `bank build` arguments every set is built with (after ``vip-perception``)."""
    return ["bank", "build", "--data", data, "--out", out, "--arch", "vgg_s", "--input-size", "64",
            "--time-budget", f"{budget_min:g}", "--workers", str(workers), "--threads", str(threads),
            "--no-progress"]


def checkout_env() -> dict:
    """The environment of a subprocess that runs this checkout's package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def recipe_batch(path: Path) -> int | None:
    """The training batch size the build planned (its first parent's), from WORK/recipe.yaml."""
    import yaml

    if not path.is_file():
        return None
    parents = (yaml.safe_load(path.read_text()) or {}).get("parents") or [{}]
    return parents[0].get("train", {}).get("batch_size")


def measure_build(data: Path, args) -> dict:
    """Build ``data`` in a subprocess, sampled; the result entry (without the data's stats)."""
    with tempfile.TemporaryDirectory(prefix="vip_build_memory_") as tmp:
        out, log_path = Path(tmp) / "bank", Path(tmp) / "build.stderr"
        argv = build_command(str(data), str(out), args.time_budget, args.threads, args.workers)
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "vip_perception.cli", *argv], env=checkout_env(),
                                    stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True)
            w = watch(proc, args.interval, args.timeout)
        text = log_path.read_text(errors="replace")
        plan, manifest = read_json(Path(f"{out}.work") / "plan.json"), read_json(out / "manifest.json")
        batch = recipe_batch(Path(f"{out}.work") / "recipe.yaml")
    reported = "tree_pss" if w.peaks_mib()["tree_pss_mib"] is not None else "tree_rss"
    return {
        "build_command": "vip-perception " + " ".join(build_command(
            portable(data), "<tmp>/bank", args.time_budget, args.threads, args.workers)),
        "exit_code": w.exit_code, "wall_s": w.wall_s, "samples": len(w.samples),
        "peak": w.peaks_mib(), "reported": reported, "phases": phase_peaks(w, phase_starts(text, w.wall_start)),
        "timeline_mib": w.timeline(reported),
        "plan": None if plan is None else {k: plan[k] for k in ("parents", "sensitivity_samples",
                                                                "finetune_epochs", "profile_runs", "seconds")},
        "batch_size": batch, "members": None if manifest is None else len(manifest["members"]),
        **({} if w.exit_code == 0 else {"log_tail": text.replace(tmp, "<tmp>").splitlines()[-20:]}),
    }


def portable(path) -> str:
    from vip_perception.bank.provenance import portable_path

    return portable_path(path)


# ---------------------------------------------------------------------------------------------
# The record


def ratios(small: dict, large: dict) -> dict:
    """large / small of every peak both builds read, and of the sets' images and decoded bytes."""
    out = {"images": round(large["images"] / small["images"], 2),
           "decoded_rgb": round(large["decoded_rgb_mib"] / small["decoded_rgb_mib"], 2)}
    for key in PEAKS:
        a, b = small["peak"][f"{key}_mib"], large["peak"][f"{key}_mib"]
        if a and b is not None:
            out[key] = round(b / a, 3)
    return out


def make_record(sizes: dict[str, dict], command: str, threads: int) -> dict:
    """The JSON record of a run: ``sizes`` maps "small"/"large" to dataset_stats | measure_build."""
    from vip_perception.machine import machine_info

    small, large = sizes["small"], sizes["large"]
    reported = large["reported"] if large["reported"] == small["reported"] else "tree_rss"
    peak = large["peak"][f"{reported}_mib"]
    return {
        "what": "Peak memory of `vip-perception bank build --data DIR` (the build process and its DataLoader "
                "workers, sampled with psutil) on a small ImageFolder and one with >= 10x its images",
        "command": command,
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(threads),
        "threads": threads,
        "reported": reported,
        "sizes": sizes,
        "ratio_large_over_small": ratios(small, large),
        "large_decoded_over_peak": round(large["decoded_rgb_mib"] / peak, 2) if peak else None,
    }


def command_line(argv: list[str] | None) -> str:
    from vip_perception.bank.provenance import portable_command

    words = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", "scripts/measure_build_memory.py", portable_command(words, PATH_FLAGS)]).strip()


def summary(record: dict) -> list[str]:
    """Human lines: per set the images, decoded size, wall time and peaks; the ratio."""
    key = record["reported"]
    lines = [f"{'set':<6} {'images':>7} {'decoded MiB':>12} {'wall s':>7} {'exit':>4} {'main RSS':>9} "
             f"{'tree RSS':>9} {'tree PSS':>9}  (peaks, MiB)"]
    for name, s in record["sizes"].items():
        p = s["peak"]
        lines.append(f"{name:<6} {s['images']:>7} {s['decoded_rgb_mib']:>12.1f} {s['wall_s']:>7.1f} "
                     f"{str(s['exit_code']):>4} {p['main_rss_mib'] or 0:>9.1f} {p['tree_rss_mib'] or 0:>9.1f} "
                     f"{p['tree_pss_mib'] or 0:>9.1f}")
    r = record["ratio_large_over_small"]
    lines.append(f"large/small: {r['images']}x the images, {r.get(key)}x the peak {key}; the large set decoded "
                 f"is {record['large_decoded_over_peak']}x its build's peak")
    return lines


# ---------------------------------------------------------------------------------------------
# Command line


def datasets(args) -> tuple[Path, Path]:
    """(small, large) ImageFolders: as given, or exported into --scratch for --make."""
    if args.make:
        if not args.scratch:
            raise MeasureError("--make needs --scratch DIR (where the exports are written, several GB at full size)")
        small_limit, large_limit = export_limits(args.make)
        scratch = Path(args.scratch)
        for name, limit in (("small", small_limit), ("large", large_limit)):
            ensure_export(scratch / name, limit, checkout_env())
        return scratch / "small", scratch / "large"
    if not (args.small and args.large):
        raise MeasureError("give --small DIR --large DIR, or --make N --scratch DIR")
    for flag, d in (("--small", args.small), ("--large", args.large)):
        if not os.path.isdir(d):
            raise MeasureError(f"{flag} {d}: not a directory; give an ImageFolder")
    return Path(args.small), Path(args.large)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", help="ImageFolder built first")
    ap.add_argument("--large", help=f"ImageFolder with >= {MIN_RATIO:g}x the small one's images")
    ap.add_argument("--make", type=int, default=0, help="export Fashion-MNIST 224x224: about N images in the "
                    "large set, N/10 in the small one (into --scratch)")
    ap.add_argument("--scratch", help="--make: directory for SCRATCH/small and SCRATCH/large (reused when present)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "build_memory.json"))
    ap.add_argument("--time-budget", type=float, default=10.0,
                    help="the build's --time-budget, minutes (default 10: the 50k set gets a ViP variant)")
    ap.add_argument("--threads", type=int, default=1, help="the build's --threads (default 1)")
    ap.add_argument("--workers", type=int, default=2, help="the build's --workers (default 2)")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between samples (default 0.2)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per build before it is killed")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        small, large = datasets(args)
        stats = {"small": dataset_stats(small), "large": dataset_stats(large)}
        if stats["large"]["images"] < MIN_RATIO * stats["small"]["images"]:
            raise MeasureError(f"--large {large}: {stats['large']['images']} images, fewer than {MIN_RATIO:g}x "
                               f"--small's {stats['small']['images']}; give a larger set or a smaller one")
    except MeasureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sizes = {}
    for name, data in (("small", small), ("large", large)):
        print(f"building {name} ({stats[name]['images']} images) ...", file=sys.stderr)
        sizes[name] = {"data": portable(data), **stats[name], **measure_build(data, args)}
    record = make_record(sizes, command_line(argv), args.threads)
    from vip_perception.jsonfile import write_json

    write_json(args.out, record)
    print("\n".join(summary(record)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(s["exit_code"] == 0 for s in sizes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
