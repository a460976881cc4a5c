"""Parameter declarations as data: one ``Spec`` per parameter, turned into a ROS
ParameterDescriptor, checked for choices and ranges, and declared on a node.

Shared by the perception node (``parameters.SPECS``) and the camera node
(``camera_source.SPECS``); the README's parameter tables are generated from these sequences.
Torch-free, so the camera node starts without the model stack.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
)
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class Spec:
    """One declared parameter: ``default`` also fixes its type (a list: an array)."""
    name: str
    default: Any
    description: str
    choices: tuple = ()              # allowed string values (empty: any)
    min: float | None = None         # inclusive range, enforced by rclpy and ``check_value``
    max: float | None = None
    read_only: bool = False          # True: set at start only (a change needs a restart)
    type: int = ParameterType.PARAMETER_NOT_SET  # set for arrays whose default is empty


def descriptor(spec: Spec) -> ParameterDescriptor:
    """The ParameterDescriptor ``ros2 param describe`` shows: description, read-only flag,
    the numeric range, and the choices as ``additional_constraints``."""
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
    return d


def check_value(spec: Spec, value: Any) -> str | None:
    """Why ``value`` breaks ``spec``'s choices or range (one line naming the parameter), or
    None. Pure."""
    if spec.choices and value not in spec.choices:
        return f"{spec.name} must be one of {list(spec.choices)}, got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.min is not None and value < spec.min:
            return f"{spec.name} must be >= {spec.min}, got {value}"
        if spec.max is not None and value > spec.max:
            return f"{spec.name} must be <= {spec.max}, got {value}"
    return None


def declare_all(node, specs: Sequence[Spec]) -> dict[str, Any]:
    """Declare every spec on ``node`` (YAML / launch overrides apply) -> {name: value}.
    Values are as declared; the caller validates them."""
    values = {}
    for spec in specs:
        if spec.type == ParameterType.PARAMETER_INTEGER_ARRAY and spec.default == []:
            # An empty list has no element type; declare typed, then fill the default in.
            p = node.declare_parameter(spec.name, Parameter.Type.INTEGER_ARRAY, descriptor(spec))
            values[spec.name] = [] if p.type_ == Parameter.Type.NOT_SET else list(p.value)
        else:
            values[spec.name] = node.declare_parameter(spec.name, spec.default,
                                                       descriptor(spec)).value
    return values
