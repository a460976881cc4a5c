"""What the test suite needs to run, checked once before any test (see conftest.py).

A *required* group that cannot run fails the whole run before the first test: a suite whose
ROS, torch or dataset tests quietly skip would pass while testing little. An *optional* group
may be missing; its tests skip and the run's summary names the group and why.

The real ROS 2 tooling (vision_msgs, launch_ros, ros2cli) is required where it can be had: with
a ROS 2 distribution sourced ($ROS_DISTRO), or where its sources are at hand
($VIP_ROS2_TOOLING_DIR, else ../shared/ros2-tooling beside the repository; scripts/test builds
them into .venv). Elsewhere those groups are optional.

``VIP_TEST_ALLOW_MISSING=group[,group...]`` lets a run go on without the named required groups
(their tests then skip, and the summary says so). It is for a machine that cannot have a group,
never a default; an unknown name is an error.

Each probe does the least that proves the group works (not just that a module imports) and
returns a one-line description for the summary; it raises on failure.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ALLOW_ENV = "VIP_TEST_ALLOW_MISSING"
FASHION_MNIST_ENV = "VIP_FASHION_MNIST_DIR"
FASHION_MNIST_DEFAULT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TOOLING_ENV = "VIP_ROS2_TOOLING_DIR"
SETUP_HINT = "run scripts/test (it creates .venv with requirements-ros.txt and requirements-dev.txt)"


@dataclass(frozen=True)
class Group:
    name: str
    required: bool
    probe: Callable[[], str]
    fix: str  # what to do when the probe fails


@dataclass(frozen=True)
class Result:
    group: Group
    ok: bool
    detail: str  # the probe's description, or the failure as one line
    allowed: bool = False  # a required group let go by VIP_TEST_ALLOW_MISSING


def _torch() -> str:
    import torch

    y = torch.ones(2, 3) @ torch.ones(3, 2)
    assert float(y.sum()) == 12.0
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def _rclpy() -> str:
    """A private context, a node (one DDS participant) and a publisher; all torn down."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image  # the node's input type: the message packages load

    context = rclpy.Context()
    # No signal handlers: the probe must leave Ctrl-C to pytest.
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node("vip_test_required_groups", context=context)
        try:
            pub = node.create_publisher(Image, "vip_test_required_groups", 1)
            pub.publish(Image())
        finally:
            node.destroy_node()
        rmw = rclpy.get_rmw_implementation_identifier()
    finally:
        rclpy.try_shutdown(context=context)
    return f"rclpy over {rmw}, ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}"


def _cv2() -> str:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok and cv2.imdecode(buf, cv2.IMREAD_COLOR).shape == (8, 8, 3)
    return f"OpenCV {cv2.__version__}"


def _onnxruntime() -> str:
    """Export-side onnx and runtime-side onnxruntime: build an Identity model and run it."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.array([1.0, 2.0], np.float32)})
    assert out.tolist() == [1.0, 2.0]
    return f"onnx {onnx.__version__}, onnxruntime {ort.__version__}"


def _native_or_fallback() -> str:
    """The ViP upsampling entry the fused path uses gives the reference's values, whether the
    native kernel built or the PyTorch fallback runs; which one is reported."""
    import torch

    from vip_perception.fused import native
    from vip_perception.vip import vip_upsample_reference

    x = torch.arange(2 * 3 * 3 * 4, dtype=torch.float32).reshape(2, 3, 3, 4)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = native.upsample(x, (5, 8))
    torch.testing.assert_close(out, vip_upsample_reference(x, (5, 8)))
    return native.native_status()


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DEFAULT)


def _fashion_mnist() -> str:
    root = fashion_mnist_dir()
    missing = [n for n in FASHION_MNIST_FILES if not (root / n).is_file() and not (root / f"{n}.gz").is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: missing {', '.join(m + '[.gz]' for m in missing)}")
    from vip_perception.data.fashion_mnist import read_idx

    labels = read_idx(str(root / "t10k-labels-idx1-ubyte"))
    assert labels.shape == (10000,), labels.shape
    return str(root)


def _test_tools() -> str:
    """requirements-dev.txt: the tools some tests import or run (they would skip without them)."""
    import catkin_pkg  # noqa: F401 - package.xml validation
    import hypothesis  # noqa: F401 - fuzz tests
    import jsonschema  # noqa: F401 - manifest schema
    import psutil  # noqa: F401 - soak RSS
    import pytest_timeout  # noqa: F401 - per-test time bounds

    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        raise FileNotFoundError(f"colcon not found next to {sys.executable} (colcon-common-extensions)")
    return "pytest-timeout, hypothesis, jsonschema, psutil, catkin_pkg, colcon"


def tooling_sources(environ=os.environ) -> Path | None:
    """The ROS 2 tooling sources folder (src.tar.gz + build.sh) if at hand, else None."""
    folder = Path(environ.get(TOOLING_ENV) or Path(__file__).resolve().parents[2] / "shared" / "ros2-tooling")
    return folder if (folder / "src.tar.gz").is_file() and (folder / "build.sh").is_file() else None


def tooling_required(environ=os.environ) -> bool:
    """Real vision_msgs + launch_ros + ros2cli are required with a distribution or the sources."""
    return bool(environ.get("ROS_DISTRO")) or tooling_sources(environ) is not None


def tooling_hint(environ=os.environ) -> str:
    if environ.get("ROS_DISTRO"):
        return f"install it from ROS 2 {environ['ROS_DISTRO']} (apt install ros-<distro>-...) and source setup.bash"
    sources = tooling_sources(environ)
    if sources is not None:
        return (f"scripts/test builds it from {sources} into .venv (needs cmake and a C/C++ compiler); "
                f"in another venv follow {sources}/README.md and export AMENT_PREFIX_PATH=<venv>")
    return (f"set {TOOLING_ENV} to the ros2-tooling folder (src.tar.gz, build.sh) or put it at "
            "../shared/ros2-tooling, or source a ROS 2 distribution, then run scripts/test")


def _vision_msgs() -> str:
    """The message classes import and their type support loads (a message is created)."""
    from vision_msgs.msg import Detection2DArray, LabelInfo

    Detection2DArray(), LabelInfo()
    return "vision_msgs"


def _launch_ros() -> str:
    """launch_ros imports and the ament index finds packages (what `ros2 launch` resolves with)."""
    import launch_ros  # noqa: F401
    from ament_index_python.packages import get_package_share_directory

    get_package_share_directory("vision_msgs")  # PackageNotFoundError: AMENT_PREFIX_PATH is unset
    return "launch_ros, ament index"


def _ros2cli() -> str:
    import ros2cli  # noqa: F401

    if shutil.which("ros2") is None:
        raise FileNotFoundError("the ros2 command is not on PATH")
    return "ros2 command"


TOOLING_REQUIRED = tooling_required()
TOOLING_HINT = tooling_hint()
GROUPS = (
    Group("torch", True, _torch, SETUP_HINT),
    Group("rclpy", True, _rclpy, SETUP_HINT + "; with a ROS 2 distribution, source its setup.bash first"),
    Group("cv2", True, _cv2, SETUP_HINT + " (opencv-python-headless)"),
    Group("onnxruntime", True, _onnxruntime, "pip install onnx onnxruntime (requirements-dev.txt)"),
    Group("native-kernels", True, _native_or_fallback,
          "the PyTorch reference path must import; see the error (VIP_PERCEPTION_NATIVE=0 forces the fallback)"),
    Group("fashion-mnist", True, _fashion_mnist,
          f"install Debian's dataset-fashion-mnist or set {FASHION_MNIST_ENV} to a directory with the IDX files"),
    Group("test-tools", True, _test_tools, "pip install -r requirements-dev.txt"),
    Group("vision_msgs", TOOLING_REQUIRED, _vision_msgs, TOOLING_HINT),
    Group("launch_ros", TOOLING_REQUIRED, _launch_ros, TOOLING_HINT),
    Group("ros2cli", TOOLING_REQUIRED, _ros2cli, TOOLING_HINT),
)
GROUP_NAMES = tuple(g.name for g in GROUPS)


def allowed_missing(environ=os.environ) -> set[str]:
    """The required groups ``VIP_TEST_ALLOW_MISSING`` lets go; ValueError on an unknown name."""
    names = {n.strip() for n in environ.get(ALLOW_ENV, "").split(",") if n.strip()}
    unknown = names - {g.name for g in GROUPS if g.required}
    if unknown:
        raise ValueError(f"{ALLOW_ENV}: unknown required group(s) {', '.join(sorted(unknown))}; "
                         f"the required groups are {', '.join(g.name for g in GROUPS if g.required)}")
    return names


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


def check(groups=GROUPS, allowed: set[str] = frozenset()) -> list[Result]:
    """Run every probe; never raises for a probe's failure (it becomes a Result with ok=False)."""
    results = []
    for group in groups:
        try:
            results.append(Result(group, True, group.probe()))
        except Exception as exc:  # noqa: BLE001 - any failure means the group cannot run
            results.append(Result(group, False, _one_line(exc), group.required and group.name in allowed))
    return results


def failures(results: list[Result]) -> list[Result]:
    """Required groups that failed and were not allowed to."""
    return [r for r in results if r.group.required and not r.ok and not r.allowed]


def failure_message(results: list[Result]) -> str:
    lines = ["required test group(s) cannot run; the suite would skip what it exists to test:"]
    for r in failures(results):
        lines.append(f"  {r.group.name}: {r.detail}\n      fix: {r.group.fix}")
    lines.append(f"(a machine that cannot have a group: {ALLOW_ENV}=name[,name] runs without it, reported)")
    return "\n".join(lines)


def summary_lines(results: list[Result]) -> list[str]:
    """The end-of-run report: required groups as probed, optional groups that skipped and why."""
    lines = []
    for r in results:
        if r.ok:
            lines.append(f"{'required' if r.group.required else 'optional'} {r.group.name}: {r.detail}")
    for r in results:
        if not r.ok and r.allowed:
            lines.append(f"required {r.group.name}: MISSING, allowed by {ALLOW_ENV} ({r.detail}); its tests skipped")
    for r in results:
        if not r.ok and not r.group.required:
            lines.append(f"optional {r.group.name}: not available, its tests skip ({r.detail}); {r.group.fix}")
    return lines
