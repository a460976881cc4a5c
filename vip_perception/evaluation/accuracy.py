"""Accuracy of a bank's members on labelled data from disk (`vip-perception evaluate accuracy`).

Each member is scored as the node serves it: the bank's ``preprocess`` of the whole image, the
member's batch-1 runner (``Member.run``) and the task's ``postprocess`` back to image pixels.
Top-1 on an ImageFolder; COCO mAP@0.5 and mAP@[.5:.95] (pycocotools, crowd boxes handled as COCO
does) on a COCO directory. Every inference is timed, members in a rotating order per image so
machine noise is shared, and the p50/p95 of those times is each member's latency on this
machine. Classes are matched by name (a bank's "T-shirt/top" is the folder "T-shirt_top"), so
the data's class order need not be the bank's.
"""
from __future__ import annotations

import time

import numpy as np

from vip_perception.bank.provenance import portable_path

from ..data.user_data import DatasetError, DatasetInfo, coco_ground_truth, folder_name, open_split
from ..machine import machine_info
from ..quantiles import percentiles

WARMUP_RUNS = 3  # untimed runs per member before the first image (allocator, thread pool, oneDNN)


def match_classes(bank_names: list[str], data_names: list[str], bank_where: str, data_where: str) -> list[int]:
    """The data class index of each bank class, matched by name or by its ``folder_name``;
    DatasetError naming both lists when the two sets of classes differ."""
    index = {n: i for i, n in enumerate(data_names)}
    mapping = [index.get(n, index.get(folder_name(n), -1)) for n in bank_names]
    if len(bank_names) != len(data_names) or -1 in mapping or len(set(mapping)) != len(mapping):
        raise DatasetError(f"classes of {data_where} {data_names} do not match those of bank {bank_where} "
                           f"{bank_names}; evaluate on data labelled with the bank's classes")
    return mapping


DEFAULT_SPLIT = {"seed": 0, "val_fraction": 0.15, "test_fraction": 0.15}


def build_split_settings(bank) -> dict:
    """{"seed", "val_fraction", "test_fraction"} the bank's build split its data with (from the
    manifest's recipe), so data without its own splits is scored on the build's held-out images;
    ``DEFAULT_SPLIT`` for what the manifest does not record."""
    build = bank.manifest.get("build") or {}
    recipe = build.get("recipe") or {}
    data = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}  # a detector recipe: a directory
    seed = recipe.get("seed", build.get("seed", DEFAULT_SPLIT["seed"]))
    return {"seed": int(seed),
            "val_fraction": float(data.get("val_fraction", DEFAULT_SPLIT["val_fraction"])),
            "test_fraction": float(data.get("test_fraction", DEFAULT_SPLIT["test_fraction"]))}


class _Top1:
    """Top-1 of each member; the target is the data's class index."""

    def __init__(self, mapping: list[int]):
        self.mapping = mapping
        self.correct: dict[str, int] = {}
        self.count: dict[str, int] = {}

    def add(self, member: str, result: dict, target) -> None:
        self.correct[member] = self.correct.get(member, 0) + int(self.mapping[result["class_id"]] == target)
        self.count[member] = self.count.get(member, 0) + 1

    def score(self, member: str) -> dict:
        return {"top1": self.correct.get(member, 0) / max(1, self.count.get(member, 0))}


class _CocoMap:
    """COCO mAP of each member; the target is the item's dict (its ``image_id``)."""

    def __init__(self, mapping: list[int], gt: dict):
        self.mapping, self.gt = mapping, gt
        self.results: dict[str, list[dict]] = {}
        self.image_ids: set[int] = set()

    def add(self, member: str, result: dict, target) -> None:
        self.image_ids.add(int(target["image_id"]))
        rows = self.results.setdefault(member, [])
        for d in result["detections"]:
            x0, y0, x1, y1 = d.box
            rows.append({"image_id": int(target["image_id"]), "category_id": self.mapping[d.class_id] + 1,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "score": d.score})

    def score(self, member: str) -> dict:
        from ..tasks.detection import coco_map

        ids = self.image_ids  # only the images scored (a --limit, unreadable images left out)
        gt = {**self.gt, "images": [im for im in self.gt["images"] if im["id"] in ids],
              "annotations": [a for a in self.gt["annotations"] if a["image_id"] in ids]}
        return coco_map(gt, self.results.get(member, []))


def _scored_indices(n: int, limit: int, seed: int) -> np.ndarray:
    """All of 0..n-1, or ``limit`` of them drawn with ``seed`` (so a class-sorted folder's
    first images are not all one class), ascending."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def _run_members(bank, dataset, indices, scorer, threads: int, progress: bool) -> dict[str, list[float]]:
    """Score every member on each image and time each batch-1 run (ms); returns member -> times."""
    import torch
    from tqdm import tqdm

    from ..tasks import get_task

    task = get_task(bank.task)
    s = bank.input_spec
    zeros = torch.zeros(1, s.channels, s.height, s.width)  # (1, C, H, W)
    for m in bank.members:
        for _ in range(WARMUP_RUNS):
            m.run(zeros, threads)
    times: dict[str, list[float]] = {m.name: [] for m in bank.members}
    for k, i in enumerate(tqdm(indices, desc="images", disable=not progress, mininterval=2.0)):
        item = dataset[int(i)]
        if item is None:  # unreadable: counted in dataset.skipped
            continue
        image, target = item
        h, w = image.shape[:2]
        x = bank.preprocess(image)  # (1, C, H, W), as the node preprocesses a frame
        order = bank.members[k % len(bank.members):] + bank.members[:k % len(bank.members)]
        for m in order:
            t0 = time.perf_counter()
            out = m.run(x, threads)
            times[m.name].append((time.perf_counter() - t0) * 1e3)
            scorer.add(m.name, task.postprocess(out, bank.class_names, (s.height, s.width), (0, 0, w, h)), target)
    return times


def evaluate_accuracy(bank, info: DatasetInfo, split: str = "test", limit: int = 0, threads: int = 1,
                      seed: int = 0, progress: bool = False) -> dict:
    """Per member: top-1 (ImageFolder) or mAP@0.5 / mAP@[.5:.95] (COCO) on ``split`` of ``info``
    (``limit`` > 0: that many images, seeded), batch-1 latency p50/p95 (ms) at ``threads``, and for a
    ViP member its speed-up and accuracy loss against its parent. ``seed`` must be the one the
    split was made with (data without its own splits). DatasetError when the bank's task or
    classes do not match the data's. Returns the JSON-ready result (machine record included)."""
    import torch

    if bank.task != info.task:
        raise DatasetError(f"{info.root}: {info.format} data is for {info.task}, but bank {bank.path} is a "
                           f"{bank.task} bank")
    mapping = match_classes(bank.class_names, info.class_names, bank.path, info.root)
    dataset = open_split(info, split, seed)
    dataset.substitute = False  # an unreadable image is left out, not replaced by another one scored twice
    scorer = _CocoMap(mapping, coco_ground_truth(info, split, seed)) if info.format == "coco" else _Top1(mapping)
    indices = _scored_indices(len(dataset), limit, seed)
    saved = torch.get_num_threads()
    try:
        with torch.inference_mode():
            times = _run_members(bank, dataset, indices, scorer, threads, progress)
    finally:
        torch.set_num_threads(saved)
    rows = {m.name: {"name": m.name, "parent": m.parent, "vip_layers": list(m.vip_layers), **scorer.score(m.name),
                     **{f"latency_ms_{q}": v for q, v in percentiles(times[m.name], (50, 95)).items()},
                     "runs": len(times[m.name])} for m in bank.members}
    metric = "top1" if info.format != "coco" else "map50"
    for r in rows.values():
        p = rows.get(r["parent"]) if r["parent"] else None
        if p is not None and r["runs"]:
            r["speedup"] = p["latency_ms_p50"] / r["latency_ms_p50"]
            r[f"{metric}_loss"] = p[metric] - r[metric]
    return {"bank": portable_path(bank.path), "name": bank.name, "task": bank.task, "backend": bank.backend,
            "data": portable_path(info.root), "format": info.format, "split": split,
            "images": len(times[bank.members[0].name]),
            "skipped": dict(dataset.skipped), "metric": metric, "threads": threads,
            "split_settings": {"seed": seed, "val_fraction": info.val_fraction, "test_fraction": info.test_fraction},
            "machine": machine_info(threads), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "members": list(rows.values())}
