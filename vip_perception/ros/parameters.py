"""The perception node's parameters: one table of declarations, pure validation, a typed
snapshot.

``SPECS`` is the single source: the node declares it, ``Settings`` takes its fields and
defaults from it, the YAML configs and the README table are checked against it. Validation is
pure: the on-set callback only answers yes or no with a reason; the node applies a change
after it has been accepted. Engine settings are checked by ``EngineConfig.validate`` (the
engine's own rule), enumerations come from the modules that define them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import ParameterType, SetParametersResult
from rclpy.parameter import Parameter

from vip_perception.backends import BACKENDS
from vip_perception.roi import clip_roi
from vip_perception.runtime.engine import EngineConfig
from vip_perception.runtime.selector import NO_FIT_POLICIES, QUANTILES
from vip_perception.share import SHIPPED_BANKS, bank_directory

from . import param_specs
from .convert import MAX_DIM
from .output import OUTPUT_FORMATS, vision_msgs_available
from .param_specs import Spec

TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")

SPECS: tuple[Spec, ...] = (
    Spec("bank", "", "Model bank directory (holds manifest.json), or the name of a shipped "
         "bank (fashion_mnist, station, conveyor_detector). Empty: the shipped "
         "config/banks/fashion_mnist. Changing it swaps the bank between frames; a bank that "
         "fails to load is rejected with the reason and the old one keeps serving."),
    Spec("backend", "torch", "Execution backend of the bank's members: torch, or onnxruntime "
         "(classification banks profiled with `bank profile --backend onnxruntime`). Changing it "
         "reloads the bank on that backend between frames, like a bank change; a bank that cannot "
         "run on it is rejected with the reason. To change bank and backend together, set both "
         "in one atomic call (set_parameters_atomically).", choices=BACKENDS),
    Spec("image_topics", ["image_raw"], "Camera topics, one per camera; served round robin, "
         "newest frame only.", read_only=True),
    Spec("image_transport", "raw", "raw: sensor_msgs/Image on each topic; compressed: "
         "sensor_msgs/CompressedImage on <topic>/compressed.", choices=TRANSPORTS,
         read_only=True),
    Spec("reliability", "best_effort", "Subscription reliability. best_effort (sensor data) "
         "connects to every publisher; reliable never connects to a best_effort publisher. "
         "Applied at start.", choices=RELIABILITIES, read_only=True),
    Spec("deadline_ms", 50.0, "Per-frame deadline from the image stamp, ms (> 0). Frames older "
         "than this when the worker reaches them are dropped and counted.",
         min=0.0, max=600000.0),
    Spec("margin_ms", 1.0, "Safety margin subtracted from the time left, ms (>= 0).",
         min=0.0, max=600000.0),
    Spec("latency_quantile", "p95", "Which profiled latency quantile the selector trusts.",
         choices=QUANTILES),
    Spec("on_no_fit", "fastest", "When no member fits the time left: run the fastest anyway, "
         "or skip the frame.", choices=NO_FIT_POLICIES),
    Spec("roi", [], "Region of interest x, y, w, h in frame pixels; empty = whole frame. "
         "Clipped to the frame; rejected when it lies outside the frames seen so far (a frame "
         "it misses is counted as malformed, roi_outside).", type=ParameterType.PARAMETER_INTEGER_ARRAY),
    Spec("threads", 0, "Intra-op threads for inference; 0 = let the selector choose among "
         "profiled thread counts.", min=0, max=256),
    Spec("calibrate_on_start", True, "Before serving (and after a bank swap), run every (member, "
         "threads) option a few times, paced like frames, in at most 5 s, and seed the slowdown "
         "estimate with what this machine measured: a bank profiled on another machine kind then "
         "predicts right from the first frame. Logged, in bank_info, and `calibrated` in the timing "
         "JSON.", read_only=True),
    Spec("sense_cpu_load", True, "With threads 0: read every 0.1 s how many of this process's "
         "cores other processes use (/proc); a thread count needing cores they hold is not "
         "chosen, and when they free them the slowdown estimate forgets their load at once. "
         "false: learn both from frame timings alone (a miss each)."),
    Spec("output_format", "auto", "auto: vision_msgs when importable, else JSON on "
         "std_msgs/String; vision_msgs; json.", choices=OUTPUT_FORMATS),
    Spec("publish_debug_image", False, "Publish an annotated frame on ~/debug_image (rendered "
         "only while someone subscribes)."),
    Spec("score_threshold", 0.25, "Detection banks: minimum score of a published detection.",
         min=0.0, max=1.0),
    Spec("top_k", 5, "Classification banks: hypotheses per result (vision_msgs/Classification "
         "results and the JSON top_k list), best first; fewer when the bank has fewer classes. "
         "Ranked per frame with a partial sort, so a large k costs time only on large banks.",
         min=1, max=1000),
    Spec("max_detections", 100, "Detection banks: at most this many detections per frame.",
         min=0, max=10000),
    Spec("hardware_id", "", "hardware_id reported in /diagnostics (empty: host name)."),
    Spec("diagnostics_period_s", 1.0, "Period of /diagnostics, s.", min=0.05, max=60.0,
         read_only=True),
    Spec("miss_ratio_warn", 0.1, "Deadline-miss ratio (per period) at which diagnostics WARN.",
         min=0.0, max=1.0),
    Spec("miss_ratio_error", 0.5, "Deadline-miss ratio at which diagnostics report ERROR.",
         min=0.0, max=1.0),
    Spec("drop_ratio_warn", 0.2, "Dropped-frame ratio (stale + malformed, of received) at "
         "which diagnostics WARN.", min=0.0, max=1.0),
    Spec("drop_ratio_error", 0.8, "Dropped-frame ratio at which diagnostics report ERROR.",
         min=0.0, max=1.0),
    Spec("stale_after_s", 3.0, "A camera silent this long is reported STALE.", min=0.1,
         max=3600.0),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}


def _settings_field(spec: Spec) -> tuple:
    default = tuple(spec.default) if isinstance(spec.default, list) else spec.default
    return spec.name, type(default), dataclasses.field(default=default)


def _replace(self, **changes) -> Settings:
    """A copy with ``changes``; lists and array.array values (rclpy arrays) become tuples."""
    norm = {k: (v if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") else tuple(v))
            for k, v in changes.items()}
    return dataclasses.replace(self, **norm)


def _engine_fields(self) -> tuple:
    """What EngineConfig is built from: a change here means engine.update_config."""
    return (self.deadline_ms, self.margin_ms, self.latency_quantile, self.on_no_fit,
            self.threads, self.top_k, self.sense_cpu_load)


# A validated snapshot of every parameter (fields and defaults from SPECS, arrays as tuples);
# the worker reads one per frame.
Settings = dataclasses.make_dataclass(
    "Settings", [_settings_field(s) for s in SPECS], frozen=True,
    namespace={"replace": _replace, "engine_fields": _engine_fields,
               "__doc__": "A validated snapshot of every parameter in SPECS."})
Settings.__module__ = __name__


def engine_config(s: Settings) -> EngineConfig:
    """The engine's config from a snapshot; ValueError (the engine's reason) when invalid."""
    return EngineConfig(deadline_ms=s.deadline_ms, margin_ms=s.margin_ms,
                        latency_quantile=s.latency_quantile, on_no_fit=s.on_no_fit,
                        threads=s.threads, top_k=s.top_k, sense_cpu_load=s.sense_cpu_load)


def check_value(name: str, value: Any, frame_sizes: dict | None = None) -> str | None:
    """Reason a single value is unacceptable, or None. Pure: reads nothing but its arguments.

    ``frame_sizes`` ({camera: (height, width)} of the frames seen so far) lets a roi that
    leaves nothing of some camera's frame be rejected now rather than on every frame."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None  # not ours; rclpy rejects undeclared names itself
    reason = param_specs.check_value(spec, value)
    if reason:
        return reason
    if name == "roi":
        return check_roi(list(value), frame_sizes or {})
    if name == "output_format" and value == "vision_msgs" and not vision_msgs_available():
        return "output_format vision_msgs: the vision_msgs package is not importable here " \
               "(use auto or json)"
    if name == "image_topics" and (not value or any(not t for t in value)):
        return f"image_topics must be a non-empty list of topic names, got {list(value)}"
    return None


def check_roi(roi: list, frame_sizes: dict) -> str | None:
    """The roi rule (``vip_perception.roi.clip_roi``) against every known frame size (or the
    largest frame the node accepts when none is known yet); the first reason, or None."""
    sizes = frame_sizes or {"": (MAX_DIM, MAX_DIM)}
    for camera, hw in sizes.items():
        try:
            clip_roi(roi, hw)
        except ValueError as exc:
            return f"roi rejected: {exc}" + (f" of camera {camera}" if camera else "")
    return None


def check_settings(s: Settings) -> str | None:
    """Cross-parameter rules on the would-be snapshot, the engine's included
    (``EngineConfig.validate``); the first reason, or None."""
    if s.miss_ratio_warn > s.miss_ratio_error:
        return f"miss_ratio_warn ({s.miss_ratio_warn}) must not exceed miss_ratio_error " \
               f"({s.miss_ratio_error})"
    if s.drop_ratio_warn > s.drop_ratio_error:
        return f"drop_ratio_warn ({s.drop_ratio_warn}) must not exceed drop_ratio_error " \
               f"({s.drop_ratio_error})"
    try:
        engine_config(s).validate()
    except ValueError as exc:
        return str(exc)
    return None


def check_bank_path(path: str) -> str | None:
    """Cheap synchronous check of a bank directory (exists, manifest.json is a JSON object);
    a shipped bank's name stands for its directory (``share.bank_directory``)."""
    if not path:
        return None
    path = bank_directory(path)
    if not os.path.isdir(path):
        return f"bank {path!r}: not a directory, nor a shipped bank's name ({', '.join(SHIPPED_BANKS)})"
    manifest = os.path.join(path, "manifest.json")
    if not os.path.isfile(manifest):
        return f"bank {path!r}: no manifest.json"
    try:
        with open(manifest, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        return f"bank {manifest!r}: unreadable manifest ({exc})"
    if not isinstance(data, dict):
        return f"bank {manifest!r}: manifest is not a JSON object"
    return None


def declare(node) -> Settings:
    """Declare every parameter on ``node`` (overrides from YAML / launch apply) -> snapshot.
    Raises ValueError with the first bad value's reason."""
    values = param_specs.declare_all(node, SPECS)
    for name, value in values.items():
        reason = check_value(name, value)
        if reason:
            raise ValueError(f"parameter {reason}")
    settings = Settings().replace(**values)
    reason = check_settings(settings)
    if reason:
        raise ValueError(f"parameters: {reason}")
    return settings


def validate_change(current: Settings, params: list[Parameter],
                    bank_check: Callable[[str, str], str | None] | None = None,
                    frame_sizes: dict | None = None) -> SetParametersResult:
    """The on-set callback's body: accept the whole set or reject it with the first reason.

    ``bank_check(path, backend)`` loads the would-be bank on the would-be backend; it runs when
    either changes (both may change in one call), after the cheap checks have passed.
    ``frame_sizes`` as for ``check_value``."""
    changes = {}
    for p in params:
        if p.name not in SPEC_BY_NAME:
            continue
        value = p.value
        reason = check_value(p.name, value, frame_sizes)
        if reason is None and p.name == "bank":
            reason = check_bank_path(value)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        changes[p.name] = [] if value is None else value
    try:
        target = current.replace(**changes)
        reason = check_settings(target)
    except (TypeError, ValueError) as exc:
        reason = str(exc)
    if reason is None and bank_check is not None and ({"bank", "backend"} & set(changes)):
        reason = bank_check(target.bank, target.backend)
    if reason:
        return SetParametersResult(successful=False, reason=reason)
    return SetParametersResult(successful=True, reason="")
