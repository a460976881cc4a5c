"""ONNX models from elsewhere as bank members (``vip-perception bank import-onnx``).

Each .onnx file becomes one member of kind ``imported``: copied into the bank, checked
(one float32 (1, C, H, W) or (C, H, W) input of a fixed size; outputs of the chosen layout,
see ``backends.onnx_decoders``), its accuracy measured on the user's labelled val split (and
test when there is one) through the path the node serves (``Bank.preprocess``, the member's
ONNX Runtime runner, the task's ``postprocess``; ``evaluation.accuracy.evaluate_accuracy``,
classes matched by name), its latency profiled on ONNX Runtime
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

from ..backends.onnx_decoders import FORMATS, TASK_OF_FORMAT, Decoder, ImportedRunner, OnnxModelError
from ..data.user_data import detect_dataset
from ..evaluation.accuracy import evaluate_accuracy, match_classes
from ..letterbox import DEFAULT_PAD_VALUE, RESIZE_MODES
from ..machine import machine_info
from .bank import Bank, Member
from .manifest import file_entry, write_manifest
from .profile import profile_models, reselect
from .records import InputSpec, LatencyProfile

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


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _measure(bank: Bank, info, progress: bool) -> dict[str, dict]:
    """name -> {"val_accuracy", "test_accuracy", "metrics"} of each member of the in-memory
    ``bank``, scored as the node serves it (``evaluation.accuracy.evaluate_accuracy``: classes
    matched by name) on the val split and the test split when there is one (else 0.0)."""
    keys = ("top1",) if bank.task == "classification" else ("map50", "map")
    metrics: dict[str, dict] = {m.name: {} for m in bank.members}
    for split in ("val", "test"):
        if split in info.splits:
            result = evaluate_accuracy(bank, info, split, threads=bank.threads[-1], progress=progress)
            for row in result["members"]:
                metrics[row["name"]] |= {f"{split}_{k}": row[k] for k in keys}
    return {name: {"val_accuracy": m[f"val_{keys[0]}"], "test_accuracy": m.get(f"test_{keys[0]}", 0.0),
                   "metrics": m} for name, m in metrics.items()}


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
    match_classes(class_names, list(info.class_names), f"{out} (--labels)" if opts.labels else out, data)
    if len(class_names) < 2:  # the manifest's rule for every bank
        raise ImportOnnxError(f"{data}: {len(class_names)} class; a bank names at least two classes (a one-class "
                              "model's outputs cannot be imported; pass --labels for a model with more)")
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
    members = [Member(n, 0.0, 0.0, [], None, 0, 0, {threads[-1]: LatencyProfile(1.0, 1.0, 1.0)}, r,
                      runners={threads[-1]: r}) for n, (_, r) in models.items()]  # the runners to score
    bank = Bank(path=out, name=name, task=task, class_names=class_names, input_spec=spec, members=members,
                manifest={}, backend="onnxruntime")
    measured = _measure(bank, info, opts.progress)
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
        # the split the accuracy was measured on, where `evaluate accuracy` looks for it
        "build": {"recipe": {"seed": 0, "data": {"val_fraction": info.val_fraction,
                                                 "test_fraction": info.test_fraction}},
                  "import_onnx": {"data": os.path.abspath(data), "data_format": info.format, "format": fmt,
                                  "options": {k: v for k, v in asdict(opts).items() if k != "progress"},
                                  "sources": {n: os.path.abspath(p) for n, (p, _) in models.items()}}},
        "members": [_member_entry(n, p, out, decoder, fmt, measured[n], latency[n]) for n, (p, _) in models.items()],
        "files": files,
    }
    reselect(manifest, "onnxruntime", threads[-1])
    manifest["selection"]["frontier"] = manifest["selection"]["reselected"]["frontier"]
    write_manifest(out, manifest)
    return manifest
