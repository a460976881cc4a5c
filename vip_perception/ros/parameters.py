"""The node's parameters: one table of declarations, pure validation, a typed snapshot.

Why a table: the YAML config, the launch test and the node all read the same ``SPECS``, so a
parameter cannot be declared in one place and forgotten in another. Validation here is pure
(``check_value`` / ``check_settings``): the on-set callback must not change anything, it only
answers yes or no with a reason; the node applies a change after it has been accepted.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
from rclpy.parameter import Parameter

from vip_perception.backends import BACKENDS

QUANTILES = ("p50", "p95", "p99")
ON_NO_FIT = ("fastest", "skip")
OUTPUT_FORMATS = ("auto", "vision_msgs", "json")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")


def vision_msgs_available() -> bool:
    try:
        import vision_msgs.msg  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


@dataclass(frozen=True)
class Spec:
    """One declared parameter."""
    name: str
    default: Any
    description: str
    choices: tuple = ()              # allowed string values
    min: float | None = None         # inclusive range (rclpy enforces it too)
    max: float | None = None
    exclusive_min: bool = False      # a bound rclpy ranges cannot express (deadline > 0)
    read_only: bool = False
    type: int = ParameterType.PARAMETER_NOT_SET  # set for arrays whose default is empty


SPECS: tuple[Spec, ...] = (
    Spec("bank", "", "Model bank directory (holds manifest.json), or the name of a shipped "
         "bank (fashion_mnist, conveyor_detector). Empty: the shipped "
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
         min=0.0, max=600000.0, exclusive_min=True),
    Spec("margin_ms", 1.0, "Safety margin subtracted from the time left, ms (>= 0).",
         min=0.0, max=600000.0),
    Spec("latency_quantile", "p95", "Which profiled latency quantile the selector trusts.",
         choices=QUANTILES),
    Spec("on_no_fit", "fastest", "When no member fits the time left: run the fastest anyway, "
         "or skip the frame.", choices=ON_NO_FIT),
    Spec("roi", [], "Region of interest x, y, w, h in pixels; empty = whole frame. Clipped to "
         "the frame.", type=ParameterType.PARAMETER_INTEGER_ARRAY),
    Spec("threads", 0, "Intra-op threads for inference; 0 = let the selector choose among "
         "profiled thread counts.", min=0, max=256),
    Spec("output_format", "auto", "auto: vision_msgs when importable, else JSON on "
         "std_msgs/String; vision_msgs; json.", choices=OUTPUT_FORMATS),
    Spec("publish_debug_image", False, "Publish an annotated frame on ~/debug_image (rendered "
         "only while someone subscribes)."),
    Spec("score_threshold", 0.25, "Detection banks: minimum score of a published detection.",
         min=0.0, max=1.0),
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


@dataclass(frozen=True)
class Settings:
    """A validated snapshot of every parameter; the worker reads one per frame."""
    bank: str = ""
    backend: str = "torch"
    image_topics: tuple[str, ...] = ("image_raw",)
    image_transport: str = "raw"
    reliability: str = "best_effort"
    deadline_ms: float = 50.0
    margin_ms: float = 1.0
    latency_quantile: str = "p95"
    on_no_fit: str = "fastest"
    roi: tuple[int, ...] = field(default_factory=tuple)
    threads: int = 0
    output_format: str = "auto"
    publish_debug_image: bool = False
    score_threshold: float = 0.25
    max_detections: int = 100
    hardware_id: str = ""
    diagnostics_period_s: float = 1.0
    miss_ratio_warn: float = 0.1
    miss_ratio_error: float = 0.5
    drop_ratio_warn: float = 0.2
    drop_ratio_error: float = 0.8
    stale_after_s: float = 3.0

    def replace(self, **changes) -> "Settings":
        norm = {k: (v if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") else tuple(v))
                for k, v in changes.items()}  # lists and array.array (rclpy arrays) -> tuple
        return dataclasses.replace(self, **norm)

    def engine_fields(self) -> tuple:
        """What EngineConfig is built from: a change here means engine.update_config."""
        return (self.deadline_ms, self.margin_ms, self.latency_quantile, self.on_no_fit,
                self.threads)


assert {f.name for f in dataclasses.fields(Settings)} == set(SPEC_BY_NAME), "SPECS/Settings drift"


def descriptor(spec: Spec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=spec.name, description=spec.description,
                            read_only=spec.read_only)
    if spec.type != ParameterType.PARAMETER_NOT_SET:
        d.type = spec.type
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.min is not None and spec.max is not None:
        if isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.min),
                                                         to_value=float(spec.max), step=0.0)]
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max),
                                            step=1)]
    if spec.exclusive_min:
        d.additional_constraints = f"> {spec.min}"
    return d


def check_value(name: str, value: Any) -> str | None:
    """Reason a single value is unacceptable, or None. Pure: reads nothing but its arguments."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None  # not ours; rclpy rejects undeclared names itself
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {list(spec.choices)}, got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and spec.min is not None:
        if value < spec.min or (spec.exclusive_min and value == spec.min):
            return f"{name} must be {'>' if spec.exclusive_min else '>='} {spec.min}, got {value}"
        if spec.max is not None and value > spec.max:
            return f"{name} must be <= {spec.max}, got {value}"
    if name == "roi":
        roi = list(value)
        if roi and (len(roi) != 4 or any(v < 0 for v in roi) or roi[2] <= 0 or roi[3] <= 0):
            return f"roi must be empty or [x, y, w, h] with x, y >= 0 and w, h > 0, got {roi}"
    if name == "output_format" and value == "vision_msgs" and not vision_msgs_available():
        return "output_format vision_msgs: the vision_msgs package is not importable here " \
               "(use auto or json)"
    if name == "image_topics" and (not value or any(not t for t in value)):
        return f"image_topics must be a non-empty list of topic names, got {list(value)}"
    return None


def check_settings(s: Settings) -> str | None:
    """Cross-parameter rules, checked on the would-be snapshot."""
    if s.miss_ratio_warn > s.miss_ratio_error:
        return f"miss_ratio_warn ({s.miss_ratio_warn}) must not exceed miss_ratio_error " \
               f"({s.miss_ratio_error})"
    if s.drop_ratio_warn > s.drop_ratio_error:
        return f"drop_ratio_warn ({s.drop_ratio_warn}) must not exceed drop_ratio_error " \
               f"({s.drop_ratio_error})"
    if s.margin_ms >= s.deadline_ms:
        return f"margin_ms ({s.margin_ms}) must be smaller than deadline_ms ({s.deadline_ms})"
    return None


def check_bank_path(path: str) -> str | None:
    """Cheap synchronous check of a bank directory (exists, manifest.json is JSON); a shipped
    bank's name stands for its directory (``paths.bank_directory``)."""
    if not path:
        return None
    from vip_perception.share import bank_directory
    path = bank_directory(path)
    if not os.path.isdir(path):
        return f"bank {path!r}: not a directory"
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
    """Declare every parameter on ``node`` (overrides from YAML / launch apply) -> snapshot."""
    values = {}
    for spec in SPECS:
        if spec.type == ParameterType.PARAMETER_INTEGER_ARRAY and spec.default == []:
            # An empty list has no element type; declare typed, then fill the default in.
            p = node.declare_parameter(spec.name, Parameter.Type.INTEGER_ARRAY, descriptor(spec))
            value = [] if p.type_ == Parameter.Type.NOT_SET else list(p.value)
        else:
            value = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        reason = check_value(spec.name, value)
        if reason:
            raise ValueError(f"parameter {reason}")
        values[spec.name] = value
    settings = Settings().replace(**values)
    reason = check_settings(settings)
    if reason:
        raise ValueError(f"parameters: {reason}")
    return settings


def validate_change(current: Settings, params: list[Parameter],
                    bank_check: Callable[[str, str], str | None] | None = None
                    ) -> SetParametersResult:
    """The on-set callback's body: accept the whole set or reject it with the first reason.

    ``bank_check(path, backend)`` loads the would-be bank on the would-be backend; it runs when
    either changes (both may change in one call), after the cheap checks have passed."""
    changes = {}
    for p in params:
        if p.name not in SPEC_BY_NAME:
            continue
        value = p.value
        reason = check_value(p.name, value)
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
