"""Loading a built bank: ``load_bank(path)`` -> Bank with its members' modules ready in eval mode.

Loading is side-effect free and all-or-nothing: the manifest is schema-checked and every file's
sha256 verified before any weight file is parsed (safetensors: no unpickling), and any problem
raises BankError naming the path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import torch
from threadpoolctl import ThreadpoolController
from torch import nn

from ..backends import BACKENDS, make_backend
from ..backends.torch_backend import TorchRunner, run_torch
from ..data.image_folder import to_model_array
from ..letterbox import letterbox_image
from ..tasks import Task, get_task
from .manifest import CANDIDATES, is_served, read_manifest
from .records import BankError, CandidateRecord, InputSpec, LatencyProfile

__all__ = ["AREA_MATMUL_MAX", "Bank", "Member", "area_weights", "backend_runners", "build_member_module",
           "imported_runners", "inference_module", "is_imported", "is_imported_bank", "load_bank", "load_weights",
           "require_backend"]


def build_member_module(spec: dict, vip_layers: list[str], task: str = "classification") -> nn.Module:
    """A member's architecture (eval mode, untrained) from its manifest ``spec`` and ViP layers,
    built by the bank's ``task`` (``tasks.get_task``)."""
    return get_task(task).build_member(spec, vip_layers)


def inference_module(model: nn.Module) -> nn.Module:
    """The module a member runs: ``model`` with its ViP convolutions fused
    (``vip_perception.fused``), in eval mode; ``model`` itself when it has no ViP layer or its
    layout cannot be fused.

    The fused form computes the same function up to float rounding; at batch 1 it is what makes
    ViP pay (the plain form's full-size upsampling costs about what ViP saves). Plain
    convolutions are left as they are (``pack=False``), so parents and ViP members are compared
    on the same convolution code.
    """
    from ..vip import vip_layers_of

    if not vip_layers_of(model):
        return model.eval()
    try:
        from ..fused import fuse_vip, native_available

        fused = fuse_vip(model, pack=False).eval()
    except (ImportError, ValueError, NotImplementedError, RuntimeError):
        return model.eval()
    # Build or load the native kernels now, at load, never inside a frame's deadline: the
    # fused stages call them lazily, and a first build takes seconds (cached afterwards).
    native_available()
    return fused


def load_weights(model: nn.Module, path: str) -> nn.Module:
    """``model`` with the safetensors weights in ``path`` loaded (strict), in eval mode;
    BankError naming ``path`` when the file is unreadable or does not fit the architecture."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise BankError(f"{path}: cannot read safetensors weights ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BankError(f"{path}: weights do not fit the manifest's architecture ({exc})") from exc
    return model.eval()


@dataclass
class Member:
    """One compact-set model: metadata from the manifest plus its loaded eval-mode module.

    ``module`` is the PyTorch module (ViP fused), what evaluation and export code uses (an
    imported ONNX member has none: its ``module`` is its runner at its largest thread count);
    ``runners`` maps each profiled thread count to the callable the bank's backend serves it
    with: (1, C, H, W) float32 -> the task's model output (``Task.batch1_call``: logits, or one
    detector output dict). ``latency`` is the profile of that backend.
    """

    name: str
    val_accuracy: float
    test_accuracy: float
    vip_layers: list[str]
    parent: str | None
    macs: int
    param_bytes: int
    latency: dict[int, LatencyProfile]
    module: nn.Module
    spec: dict = field(default_factory=dict)
    file: str = ""
    runners: dict = field(default_factory=dict, repr=False)
    served: bool = True  # false: a frontier-only member (``load_bank(..., frontier=True)``)

    def run(self, x: torch.Tensor, threads: int):
        """One batch-1 inference of ``x`` (1, C, H, W) at ``threads`` on the bank's backend;
        ``run_torch`` of the module at a thread count without a runner."""
        runner = self.runners.get(threads)
        if runner is not None:
            return runner(x)
        return run_torch(self.module, x, threads)

    def quantile_ms(self, threads: int, q: str = "p95") -> float:
        """Profiled latency quantile (ms) at ``threads``; KeyError if that count was not profiled."""
        if threads not in self.latency:
            raise KeyError(f"member {self.name}: no latency profile at {threads} threads (have {sorted(self.latency)})")
        return self.latency[threads].quantile(q)


@dataclass
class Bank:
    path: str
    name: str
    task: str
    class_names: list[str]
    input_spec: InputSpec
    members: list[Member]  # served (compact ε-Pareto) set, latency ascending (accuracy ascending too)
    manifest: dict
    backend: str = "torch"  # what members run on: "torch" | "onnxruntime"

    @property
    def threads(self) -> list[int]:
        """Thread counts every member was profiled at."""
        sets = [set(m.latency) for m in self.members]
        return sorted(set.intersection(*sets)) if sets else []

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 image (H, W) or (H, W, C) in RGB order -> float32 (1, C, H, W) normalised.

        Pixel-area averaging (OpenCV's INTER_AREA), grey for 1-channel banks (ITU-R 601),
        optionally inverted; a ``letterbox`` input spec fits the image into H x W with its aspect
        kept (``letterbox.letterbox_image``) instead of stretching it. A small stretched model
        input (both sides <= ``AREA_MATMUL_MAX``, e.g. 28x28 from a 480x480 roi) is averaged as
        two float32 matrix products with the exact area weights (``area_weights``): 0.2 ms
        instead of OpenCV's 0.5 ms general-ratio path, and without rounding to uint8 in between,
        so it differs from the uint8 INTER_AREA result by at most half a grey level (0.5 / 255 /
        std after normalisation; tested). Larger inputs keep OpenCV's resize. NumPy in place,
        one tensor at the end: this runs once per frame on a cold core, where each torch op
        costs tens of microseconds.
        """
        s = self.input_spec
        h, w = image.shape[:2]
        if s.resize == "letterbox":
            x = np.ascontiguousarray(letterbox_image(image, s.height, s.width, s.channels, s.pad_value)
                                     .transpose(2, 0, 1), dtype=np.float32)  # (C, H, W)
        elif ((s.height, s.width) != (h, w) and max(s.height, s.width) <= AREA_MATMUL_MAX
                and image.dtype == np.uint8 and (image.ndim == 2 or image.ndim == 3 and image.shape[2] in (1, 3, 4))):
            x = _area_matmul(image, s.height, s.width, s.channels)  # (C, H, W) float32
        else:
            arr = to_model_array(image, s.height, s.width, s.channels)  # (H, W, C) uint8
            x = np.empty((s.channels, s.height, s.width), np.float32)  # (C, H, W)
            np.copyto(x, arr.transpose(2, 0, 1))
        scale, shift = self._affine
        x *= scale  # x / 255 [inverted] then (x - mean) / std, folded per channel
        x += shift
        return torch.from_numpy(x).unsqueeze(0)  # (1, C, H, W)

    @cached_property
    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.input_spec
        mean = np.asarray(s.mean, np.float32).reshape(-1, 1, 1) * np.ones((s.channels, 1, 1), np.float32)
        std = np.asarray(s.std, np.float32).reshape(-1, 1, 1) * np.ones((s.channels, 1, 1), np.float32)
        sign, base = (-1.0, 1.0) if s.invert else (1.0, 0.0)  # inverted: 1 - x / 255
        return ((sign / 255.0) / std).astype(np.float32), ((base - mean) / std).astype(np.float32)

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"bank {self.name}: no member {name!r} (have {[m.name for m in self.members]})")

    def candidates(self) -> list[CandidateRecord]:
        """All profiled candidates of the build (metadata only), from candidates.json."""
        import json

        path = os.path.join(self.path, CANDIDATES)
        if CANDIDATES not in self.manifest["files"]:
            return []
        with open(path) as fh:
            return [CandidateRecord.from_dict(d) for d in json.load(fh)["candidates"]]


AREA_MATMUL_MAX = 64  # model inputs up to this side are area-averaged with matrix products


@lru_cache(maxsize=32)
def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 pixel-area weights: row i averages input span [i, i+1) * n_in /
    n_out, partial pixels weighted by their overlap (what INTER_AREA computes when shrinking)."""
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)  # output pixel borders
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)  # (n_out, n_in)
    return (overlap / (n_in / n_out)).astype(np.float32)


@lru_cache(maxsize=1)
def _numpy_blas():
    """threadpoolctl's handle on the BLAS libraries loaded now (NumPy's OpenBLAS), built once."""
    return ThreadpoolController().select(user_api="blas")


def _area_matmul(image: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3|4) RGB(A) -> float32 (channels, height, width), area-averaged
    in 0..255 units. A grey bank's RGB input is made grey (ITU-R 601) before averaging: both
    are linear, so the order does not change the result, and one plane costs a third. Shrinking
    only: an input smaller than the output goes through ``to_model_array``.

    The products run on one BLAS thread (threadpoolctl, about 8 us per call): with a busy
    process on one of 2 cores, NumPy's default 2-thread OpenBLAS call waits for a scheduler
    slice now and then (480x480 RGB -> 64x64 grey: p99 104 ms against 1.0 ms, benchmarks
    "Preprocessing beside a busy process"), which alone made the demo miss under load."""
    h, w = image.shape[:2]
    if h < height or w < width:
        arr = to_model_array(image, height, width, channels)
        return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
    ry, rx_t = area_weights(h, height), area_weights(w, width).T  # (height, h), (w, width)
    img = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    with _numpy_blas().limit(limits=1):
        if img.ndim == 2:
            planes = [img.astype(np.float32)]
        elif channels == 1:  # RGB(A) -> grey first: one plane to average
            planes = [img[:, :, :3].astype(np.float32) @ _GREY]
        else:
            planes = [img[:, :, c].astype(np.float32) for c in range(3)]  # RGB; alpha dropped
        out = np.stack([ry @ p @ rx_t for p in planes])  # (3 | 1, height, width)
    if channels == 3 and len(planes) == 1:
        out = np.repeat(out, 3, axis=0)
    return np.ascontiguousarray(out, dtype=np.float32)


_GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as cv2.COLOR_RGB2GRAY


def load_bank(path: str, backend: str = "torch", frontier: bool = False) -> Bank:
    """Validate and load the bank in directory ``path`` (holding manifest.json).

    ``members`` are the served members (manifest ``served`` true or absent), what the engine
    and selector see; ``frontier=True`` also loads the frontier-only ones (``Member.served``
    false), which ``bank profile`` measures to re-select the served set. Every file's hash is
    checked either way. A served member with ``served_threads`` (a ViP variant that pays only
    at those thread counts) offers only them (its ``latency`` and ``runners``), so neither the
    selector nor calibration ever runs it elsewhere; with ``frontier=True`` it keeps them all.

    backend: "torch" (eager PyTorch, ViP fused) or "onnxruntime" (one session per member and
    profiled thread count, built here, so no frame pays for it); the bank's task must support
    it. A member's latency profile is the one measured on that backend (``bank profile
    --backend``): predictions made from another backend's times would be wrong by the very
    overhead the backend removes. Raises BankError naming the file and the problem.
    """
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.basename(path) == "manifest.json":
        path = os.path.dirname(path) or "."
    manifest_path = os.path.join(path, "manifest.json")
    if backend not in BACKENDS:
        raise BankError(f"{manifest_path}: unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    data = read_manifest(path)  # schema + every sha256, before any weight file is parsed
    task = _require_imported_backend(data, backend, manifest_path) or require_backend(data["task"], backend,
                                                                                       manifest_path)
    members = [_at_served_threads(_load_member(path, manifest_path, m, task, backend, data["input"]), m,
                                  manifest_path, frontier) for m in data["members"] if frontier or is_served(m)]
    if not members or any(not m.latency for m in members):
        raise BankError(f"{manifest_path}: every member needs a latency profile")
    q, t = data["selection"]["quantile"], data["selection"]["threads"]
    members.sort(key=lambda m: (m.quantile_ms(t, q) if t in m.latency else 0.0, m.val_accuracy))
    return Bank(path=path, name=data["name"], task=task.name, class_names=list(data["class_names"]),
                input_spec=InputSpec.from_dict(data["input"]), members=members, manifest=data, backend=backend)


def require_backend(task_name: str, backend: str, where: str) -> Task:
    """The task called ``task_name``, if it can run on ``backend``; BankError naming ``where``
    otherwise."""
    try:
        task = get_task(task_name)
    except ValueError as exc:
        raise BankError(f"{where}: {exc}") from None
    if backend not in task.backends:
        raise BankError(f"{where}: backend {backend} does not serve {task.name} banks "
                        f"(supported: {', '.join(task.backends)})")
    return task


def is_imported(member: dict) -> bool:
    """Whether a manifest member is an imported ONNX graph (``bank import-onnx``)."""
    return member.get("kind") == "imported"


def _require_imported_backend(data: dict, backend: str, where: str) -> Task | None:
    """The bank's task when its members are imported ONNX graphs (None for a built bank):
    those run on onnxruntime only, whatever their task; BankError naming ``where`` on another
    backend or for a bank mixing imported and built members."""
    imported = [is_imported(m) for m in data["members"]]
    if not any(imported):
        return None
    if not all(imported):
        raise BankError(f"{where}: a bank's members are all imported ONNX models or none")
    if backend != "onnxruntime":
        raise BankError(f"{where}: members are imported ONNX models, served on onnxruntime only "
                        f"(node: -p backend:=onnxruntime; bank profile: --backend onnxruntime), not {backend}")
    return get_task(data["task"])


def is_imported_bank(path: str) -> bool:
    """Whether the bank in directory ``path`` holds imported ONNX members, read from its
    manifest without checking it (False when unreadable: ``load_bank`` then says why)."""
    import json

    try:
        with open(os.path.join(os.fspath(path), "manifest.json"), encoding="utf-8") as fh:
            return any(is_imported(m) for m in json.load(fh).get("members", []) if isinstance(m, dict))
    except (OSError, ValueError, AttributeError):
        return False


def imported_runners(spec: dict, fpath: str, threads: list[int], letterbox: bool) -> dict:
    """An imported member's runners: one ``ImportedRunner`` (ONNX Runtime session + the
    manifest's decoder; ``letterbox``: the bank's input is letterboxed) per thread count, each
    checked on a blank input so a graph whose outputs do not fit fails at load, not on a frame.
    BankError naming ``fpath`` and the tensor."""
    from ..backends.onnx_decoders import Decoder, ImportedRunner, OnnxModelError

    try:
        decoder = Decoder.from_dict(spec["decoder"], letterbox)
        runners = {t: ImportedRunner(fpath, decoder, t) for t in threads}
        for r in runners.values():
            r(torch.zeros(r.input_shape))  # (1, C, H, W)
    except (OnnxModelError, TypeError) as exc:
        raise BankError(f"{fpath}: {exc}") from None
    return runners


def _load_imported(path: str, manifest_path: str, m: dict, input_spec: dict) -> Member:
    """An imported member entry -> Member served by its ONNX Runtime sessions."""
    fpath = os.path.join(path, m["file"])
    profile = m.get("backend_latency", {}).get("onnxruntime")
    if not profile:
        raise BankError(f"{manifest_path}: member {m['name']} has no onnxruntime latency profile; "
                        f"run `vip-perception bank profile {path} --backend onnxruntime`")
    latency = {int(t): LatencyProfile.from_dict(p) for t, p in profile.items()}
    runners = imported_runners(m["spec"], fpath, sorted(latency), input_spec.get("resize") == "letterbox")
    shape = (1, input_spec["channels"], input_spec["height"], input_spec["width"])
    if any(r.input_shape != shape for r in runners.values()):
        raise BankError(f"{fpath}: input {runners[max(latency)].input_name!r} is "
                        f"{runners[max(latency)].input_shape}, the manifest's input is {shape}")
    return Member(
        name=m["name"], val_accuracy=m["val_accuracy"], test_accuracy=m["test_accuracy"], vip_layers=[],
        parent=m["parent"], macs=m["macs"], param_bytes=m["param_bytes"], latency=latency,
        module=runners[max(latency)], spec=m["spec"], file=m["file"], runners=runners, served=is_served(m),
    )


def _at_served_threads(member: Member, m: dict, manifest_path: str, frontier: bool) -> Member:
    """``member`` offering only its manifest entry ``m``'s ``served_threads`` (unless loaded
    with the frontier, for measuring); BankError when none of them was profiled."""
    keep = m.get("served_threads")
    if frontier or not keep:
        return member
    latency = {t: p for t, p in member.latency.items() if t in keep}
    if not latency:
        raise BankError(f"{manifest_path}: member {m['name']}: served_threads {keep} names no profiled thread "
                        f"count ({sorted(member.latency)}); run `vip-perception bank profile` on the bank")
    member.latency = latency
    member.runners = {t: r for t, r in member.runners.items() if t in keep}
    return member


def _load_member(path: str, manifest_path: str, m: dict, task: Task, backend: str, input_spec: dict) -> Member:
    """One manifest member entry -> Member with its module and runners for ``backend``."""
    if is_imported(m):
        return _load_imported(path, manifest_path, m, input_spec)
    fpath = os.path.join(path, m["file"])
    try:
        plain = task.build_member(m["spec"], m["vip_layers"])
    except (ValueError, TypeError, KeyError) as exc:
        raise BankError(f"{manifest_path}: member {m['name']}: cannot rebuild architecture ({exc})") from exc
    plain = load_weights(plain, fpath)
    module = inference_module(plain)
    profile = m["latency"] if backend == "torch" else m.get("backend_latency", {}).get(backend)
    if not profile:
        raise BankError(f"{manifest_path}: member {m['name']} has no {backend} latency profile; "
                        f"run `vip-perception bank profile {path} --backend {backend}`")
    latency = {int(t): LatencyProfile.from_dict(p) for t, p in profile.items()}
    if backend == "torch":
        call = task.batch1_call(module)
        runners = {t: TorchRunner(call, t) for t in latency}
    else:
        runners = backend_runners(backend, plain, input_spec, sorted(latency), fpath)
    return Member(
        name=m["name"], val_accuracy=m["val_accuracy"], test_accuracy=m["test_accuracy"],
        vip_layers=list(m["vip_layers"]), parent=m["parent"], macs=m["macs"], param_bytes=m["param_bytes"],
        latency=latency, module=module, spec=m["spec"], file=m["file"], runners=runners, served=is_served(m),
    )


def backend_runners(backend: str, plain: nn.Module, input_spec: dict, threads: list[int], where: str) -> dict:
    """One session per thread count, exported once from the plain (unfused) ViP module, whose
    ViP upsampling becomes an exact ONNX ``Resize``; verified against PyTorch before use."""
    x = torch.zeros(1, input_spec["channels"], input_spec["height"], input_spec["width"])  # (1, C, H, W)
    runners, onnx_bytes = {}, None
    try:
        for t in threads:
            # no spinning: between frames the cores belong to whoever else runs on them
            r = make_backend(backend, plain, x, t, allow_spinning=False, onnx_bytes=onnx_bytes, keep_onnx=True,
                             verify_rtol=1e-4 if onnx_bytes is None else None)  # same bytes: checked once
            onnx_bytes = r.onnx_bytes
            runners[t] = r
    except (RuntimeError, ValueError, ImportError) as exc:
        raise BankError(f"{where}: cannot serve on {backend} ({exc})") from exc
    for r in runners.values():
        r.onnx_bytes = None  # each session holds its own copy
    return runners
