"""ONNX models from elsewhere as bank members (``vip-perception bank import-onnx``).

Each .onnx file becomes one member of kind ``imported``: copied into the bank, checked
(one float32 (1, C, H, W) input; outputs of the chosen layout, see
``backends.onnx_decoders``), its accuracy measured on the user's labelled val split (and test
when there is one) through the path the node serves (``Bank.preprocess``, the member's ONNX
Runtime runner, the task's ``postprocess``), its latency profiled on ONNX Runtime
(``profile.profile_models``), and the served set chosen by the bank's rule (``profile.reselect``:
Pareto front of (latency, val accuracy), then its ε-Pareto subset). There is no ViP: the graph
is opaque.

The manifest records per member the file, its decoder (format, class count, thresholds) and,
for the whole bank, the resize (stretch | letterbox, the letterbox grey) and normalisation in
``input``; ``load_bank(path, backend="onnxruntime")`` serves it unchanged and ``bank profile
--backend onnxruntime`` re-profiles it. Accuracy fields hold top-1 (classification) or mAP@0.5
(detection; ``metrics`` adds mAP@[.5:.95]), as in the built banks.
"""
from __future__ import annotations

import datetime
import os
import re
import shutil
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from ..backends.onnx_decoders import FORMATS, TASK_OF_FORMAT, Decoder, ImportedRunner, OnnxModelError
from ..data.user_data import coco_ground_truth, detect_dataset, open_split
from ..letterbox import DEFAULT_PAD_VALUE, RESIZE_MODES
from ..machine import machine_info
from ..tasks import get_task
from ..tasks.detection import coco_map
from .bank import Bank
from .manifest import file_entry, write_manifest
from .profile import profile_models, reselect
from .records import InputSpec

__all__ = ["ImportOnnxError", "ImportOptions", "import_onnx", "read_labels"]


class ImportOnnxError(ValueError):
    """Bad arguments or models for an import; one line naming the file or option."""


@dataclass
class ImportOptions:
    """How ``import_onnx`` reads the models (every field is recorded in the manifest)."""

    task: str | None = None  # classification | detection; default: from --format, else from the data
    format: str | None = None  # logits | torchvision | yolo; default: logits / yolo by task
    labels: list[str] | None = None  # the model's class names in output order; default: the data's
    resize: str | None = None  # stretch | letterbox; default: letterbox for yolo, stretch otherwise
    mean: tuple[float, ...] = (0.0,)  # per channel (or one for all), [0, 1] pixel units
    std: tuple[float, ...] = (1.0,)
    pad_value: int = DEFAULT_PAD_VALUE  # letterbox border grey
    score_threshold: float = 0.25  # detections below are dropped (served and measured alike)
    iou_threshold: float = 0.45  # yolo NMS
    max_detections: int = 100
    threads: list[int] = field(default_factory=lambda: [1, 2])  # profiled thread counts
    runs: int = 200  # timed runs per member and thread count
    warmup: int = 20
    rounds: int = 10
    epsilon: float = 0.01  # ε of the ε-Pareto served set, in accuracy units
    quantile: str = "p50"  # latency quantile the served set is chosen on
    progress: bool = True


def read_labels(path: str) -> list[str]:
    """Class names, one per non-empty line of ``path``; ImportOnnxError naming the file when it
    cannot be read or names fewer than two classes or one twice."""
    try:
        with open(path, encoding="utf-8") as fh:
            names = [line.strip() for line in fh if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportOnnxError(f"{path}: cannot read the labels file ({exc})") from None
    if len(names) < 2 or len(set(names)) != len(names):
        raise ImportOnnxError(f"{path}: a labels file names at least two classes, one per line, each once "
                              f"(got {len(names)} lines, {len(set(names))} distinct)")
    return names


def _resolve_task(opts: ImportOptions, data: str):
    """(task, format, DatasetInfo) from the options and the data's layout."""
    if opts.format is not None and opts.format not in FORMATS:
        raise ImportOnnxError(f"--format {opts.format!r}: choose one of {', '.join(FORMATS)}")
    task = opts.task or (TASK_OF_FORMAT[opts.format] if opts.format else None)
    if opts.format and task != TASK_OF_FORMAT[opts.format]:
        raise ImportOnnxError(f"--format {opts.format} gives {TASK_OF_FORMAT[opts.format]} outputs, not {task}")
    info = detect_dataset(data, task)  # DatasetError (a ValueError) names the folder
    fmt = opts.format or ("logits" if info.task == "classification" else "yolo")
    if "val" not in info.splits:
        raise ImportOnnxError(f"{data}: no val split to measure accuracy on (have {sorted(info.splits)})")
    return info.task, fmt, info


def _member_name(path: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", os.path.splitext(os.path.basename(path))[0]) or "model"
    if stem in taken:
        raise ImportOnnxError(f"{path}: two models are named {stem!r}; rename one file")
    return stem


def _open_models(paths: list[str], decoder: Decoder, threads: int) -> dict[str, tuple[str, ImportedRunner]]:
    """name -> (path, runner) for each model, checked on a blank input; every model must take
    the same input shape (a bank preprocesses a frame once for all members)."""
    out: dict[str, tuple[str, ImportedRunner]] = {}
    for path in paths:
        if not os.path.isfile(path):
            raise ImportOnnxError(f"{path}: ONNX model not found")
        name = _member_name(path, set(out))
        try:
            runner = ImportedRunner(path, decoder, threads)
            runner(torch.zeros(runner.input_shape))  # (1, C, H, W): checks the output layout
        except OnnxModelError as exc:
            raise ImportOnnxError(f"{path}: {exc}") from None
        first = next(iter(out.values()), None)
        if first is not None and first[1].input_shape != runner.input_shape:
            raise ImportOnnxError(f"{path}: input {runner.input_name!r} is {runner.input_shape}, but {first[0]} takes "
                                  f"{first[1].input_shape}; a bank's members share one input size")
        out[name] = (path, runner)
    return out


def _class_map(model_names: list[str], data_names: list[str], labels_given: bool) -> list[int]:
    """For each model class index, the data's class index (-1: not in the data)."""
    if not labels_given:
        return list(range(len(model_names)))
    missing = [n for n in data_names if n not in model_names]
    if missing:
        raise ImportOnnxError(f"--labels: the data's classes {missing} are not among the model's classes")
    return [data_names.index(n) if n in data_names else -1 for n in model_names]


def _input_spec(shape: tuple, resize: str, opts: ImportOptions) -> InputSpec:
    channels = shape[1]
    mean, std = tuple(opts.mean), tuple(opts.std)
    for what, v in (("--mean", mean), ("--std", std)):
        if len(v) not in (1, channels):
            raise ImportOnnxError(f"{what} has {len(v)} values; the models take {channels} channels (give 1 or "
                                  f"{channels})")
    if min(std) <= 0:
        raise ImportOnnxError(f"--std must be > 0, got {list(std)}")
    return InputSpec(shape[2], shape[3], channels, mean, std, False, resize, int(opts.pad_value))


def _coco_records(detections, image_id: int, class_map: list[int]) -> list[dict]:
    """Detections (frame pixels, model class ids) -> COCO result records in the data's ids."""
    out = []
    for d in detections:
        k = class_map[d.class_id]
        if k >= 0:
            x0, y0, x1, y1 = d.box
            out.append({"image_id": image_id, "category_id": k + 1, "score": d.score,
                        "bbox": [x0, y0, x1 - x0, y1 - y0]})
    return out


def _split_accuracy(bank: Bank, runners: dict, info, split: str, class_map: list[int], progress: bool) -> dict:
    """name -> {"top1"} or {"map50", "map"} of each runner on ``split``, through the served path
    (each image decoded and preprocessed once for all members)."""
    task = get_task(bank.task)
    items = open_split(info, split)
    s = bank.input_spec
    correct, results = dict.fromkeys(runners, 0), {n: [] for n in runners}
    for i in tqdm(range(len(items)), desc=f"accuracy {split}", disable=not progress, mininterval=2.0):
        image, target = items[i]
        x = bank.preprocess(image)  # (1, C, H, W)
        h, w = image.shape[:2]
        for name, runner in runners.items():
            fields = task.postprocess(runner(x), bank.class_names, (s.height, s.width), (0, 0, w, h))
            if bank.task == "classification":
                correct[name] += int(class_map[fields["class_id"]] == int(target))
            else:
                results[name] += _coco_records(fields["detections"], int(target["image_id"]), class_map)
    if bank.task == "classification":
        return {n: {"top1": c / max(1, len(items))} for n, c in correct.items()}
    gt = coco_ground_truth(info, split)
    return {n: coco_map(gt, r) for n, r in results.items()}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _measure(bank: Bank, models: dict, info, class_map: list[int], progress: bool) -> dict[str, dict]:
    """name -> {"val_accuracy", "test_accuracy", "metrics"} (test: 0.0 without a test split)."""
    runners = {name: runner for name, (_, runner) in models.items()}
    metrics: dict[str, dict] = {name: {} for name in models}
    for split in ("val", "test"):
        if split in info.splits:
            for name, m in _split_accuracy(bank, runners, info, split, class_map, progress).items():
                metrics[name] |= {f"{split}_{k}": v for k, v in m.items()}
    key = "top1" if bank.task == "classification" else "map50"
    return {name: {"val_accuracy": m[f"val_{key}"], "test_accuracy": m.get(f"test_{key}", 0.0), "metrics": m}
            for name, m in metrics.items()}


def _member_entry(name: str, source: str, out: str, decoder: Decoder, fmt: str, measured: dict, latency: dict) -> dict:
    fname = f"{name}.onnx"
    return {
        "name": name, "kind": "imported", "file": fname, "vip_layers": [], "parent": None,
        "spec": {"format": fmt, "decoder": decoder.to_dict()},
        "val_accuracy": measured["val_accuracy"], "test_accuracy": measured["test_accuracy"],
        "metrics": measured["metrics"], "macs": 0,  # unknown: the graph is opaque
        "param_bytes": os.path.getsize(os.path.join(out, fname)),
        "train": {"imported_from": os.path.abspath(source), "imported_at": _now()},
        "latency": {},  # no PyTorch form: served on onnxruntime only
        "backend_latency": {"onnxruntime": {str(t): p.to_dict() for t, p in sorted(latency.items())}},
    }


def import_onnx(model_paths: list[str], data: str, out: str, opts: ImportOptions | None = None) -> dict:
    """Make the bank ``out`` from the ONNX files ``model_paths``, measured on the labelled data
    in ``data`` (``data.user_data``: an ImageFolder or a COCO directory); returns its manifest.

    ImportOnnxError (a ValueError) names the model, tensor or option that does not fit;
    ``data.user_data.DatasetError`` names the data problem. Nothing is written to ``out``
    before every model has been checked; the manifest is written last.
    """
    opts = opts or ImportOptions()
    if not model_paths:
        raise ImportOnnxError("give at least one .onnx model")
    if not opts.threads or min(opts.threads) < 1:
        raise ImportOnnxError(f"--threads must list positive integers, got {opts.threads}")
    task, fmt, info = _resolve_task(opts, data)
    resize = opts.resize or ("letterbox" if fmt == "yolo" else "stretch")
    if resize not in RESIZE_MODES:
        raise ImportOnnxError(f"--resize {resize!r}: choose one of {', '.join(RESIZE_MODES)}")
    class_names = list(opts.labels) if opts.labels else list(info.class_names)
    if len(class_names) < 2:  # the manifest's rule for every bank
        raise ImportOnnxError(f"{data}: {len(class_names)} class; a bank names at least two classes (a one-class "
                              "model's outputs cannot be imported; pass --labels for a model with more)")
    class_map = _class_map(class_names, list(info.class_names), bool(opts.labels))
    try:
        decoder = Decoder(fmt, len(class_names), resize == "letterbox", opts.score_threshold, opts.iou_threshold,
                          opts.max_detections)
    except OnnxModelError as exc:
        raise ImportOnnxError(str(exc)) from None
    threads = sorted(set(opts.threads))
    models = _open_models(model_paths, decoder, threads[-1])
    shape = next(iter(models.values()))[1].input_shape
    spec = _input_spec(shape, resize, opts)
    name = os.path.basename(os.path.normpath(out))
    bank = Bank(path=out, name=name, task=task, class_names=class_names, input_spec=spec, members=[], manifest={},
                backend="onnxruntime")
    measured = _measure(bank, models, info, class_map, opts.progress)
    sessions = {n: {t: ImportedRunner(p, decoder, t) for t in threads} for n, (p, _) in models.items()}
    latency = profile_models(sessions, shape, threads, opts.runs, opts.warmup, opts.rounds, progress=opts.progress)
    os.makedirs(out, exist_ok=True)
    files = {}
    for n, (p, _) in models.items():
        shutil.copyfile(p, os.path.join(out, f"{n}.onnx"))
        files[f"{n}.onnx"] = file_entry(os.path.join(out, f"{n}.onnx"))
    manifest = {
        "name": name, "task": task, "class_names": class_names, "input": spec.to_dict(),
        "machine": {**machine_info(), "backend_profiles": {"onnxruntime": {**machine_info(), "profiled_at": _now()}}},
        "selection": {"threads": threads[-1], "quantile": opts.quantile, "epsilon": opts.epsilon, "keep_best": True,
                      "frontier": [], "metric": "val_top1" if task == "classification" else "val_map50"},
        "build": {"import_onnx": {"data": os.path.abspath(data), "data_format": info.format, "format": fmt,
                                  "options": {k: v for k, v in asdict(opts).items() if k != "progress"},
                                  "sources": {n: os.path.abspath(p) for n, (p, _) in models.items()}}},
        "members": [_member_entry(n, p, out, decoder, fmt, measured[n], latency[n]) for n, (p, _) in models.items()],
        "files": files,
    }
    reselect(manifest, "onnxruntime", threads[-1])
    manifest["selection"]["frontier"] = manifest["selection"]["reselected"]["frontier"]
    write_manifest(out, manifest)
    return manifest
