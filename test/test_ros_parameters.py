"""Parameter declarations, validation reasons, and the YAML / launch file kept in step with them."""
from __future__ import annotations

import ast
import os
import re

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402

from vip_perception.ros import camera_source, parameters  # noqa: E402
from vip_perception.ros.parameters import SPEC_BY_NAME, Settings, check_bank_path, check_value, validate_change  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "config", "vip_perception.yaml")
# The shipped params files' sections match the nodes in any namespace (rcl's "/**" wildcard):
# a plain "vip_perception:" key matches only the node in the root namespace, and a node
# launched under a namespace would silently run on its defaults.
NODE_KEY, CAMERA_KEY = "/**/vip_perception", "/**/vip_perception_camera"
LAUNCH = os.path.join(ROOT, "launch", "vip_perception.launch.py")


@pytest.mark.parametrize("name,value,reason", [
    ("deadline_ms", 0.0, "deadline_ms must be a finite number > 0, got 0.0"),  # the engine's rule
    ("deadline_ms", -5.0, "deadline_ms must be >= 0.0, got -5.0"),  # the declared range
    ("margin_ms", -1.0, "margin_ms must be >= 0.0, got -1.0"),
    ("margin_ms", 60.0, "margin_ms (60.0) must be smaller than deadline_ms (50.0): no time "
                        "would be left"),
    ("latency_quantile", "p90", "latency_quantile must be one of ['p50', 'p95', 'p99'], got 'p90'"),
    ("on_no_fit", "wait", "on_no_fit must be one of ['fastest', 'skip'], got 'wait'"),
    ("output_format", "xml", "output_format must be one of ['auto', 'vision_msgs', 'json'], "
                             "got 'xml'"),
    ("roi", [1, 2, 3], "roi rejected: roi must be (x, y, w, h) integers, got [1, 2, 3]"),
    ("roi", [0, 0, 0, 10], "roi rejected: roi (0, 0, 0, 10) has a non-positive width or height"),
    ("threads", -1, "threads must be >= 0, got -1"),
    ("score_threshold", 1.5, "score_threshold must be <= 1.0, got 1.5"),
])
def test_bad_values_are_rejected_with_the_reason(name, value, reason):
    res = validate_change(Settings(), [Parameter(name, value=value)])
    assert (res.successful, res.reason) == (False, reason)


@pytest.mark.parametrize("name,value", [("deadline_ms", 1.5), ("roi", []), ("roi", [0, 0, 5, 5]),
                                        ("roi", [-1, 0, 10, 10]),  # clipped, not rejected
                                        ("latency_quantile", "p99"), ("output_format", "json"),
                                        ("threads", 2)])
def test_good_values_pass(name, value):
    assert check_value(name, value) is None
    assert validate_change(Settings(), [Parameter(name, value=value)]).successful


def test_roi_outside_a_seen_frame_is_rejected_with_the_reason():
    sizes = {"image_raw": (480, 640)}
    res = validate_change(Settings(), [Parameter("roi", value=[700, 0, 5, 5])], frame_sizes=sizes)
    assert (res.successful, res.reason) == (
        False, "roi rejected: roi (700, 0, 5, 5) lies outside the 640x480 frame of camera image_raw")
    assert validate_change(Settings(), [Parameter("roi", value=[600, 400, 100, 100])],
                           frame_sizes=sizes).successful  # partly inside: clipped when used


def test_settings_defaults_and_enumerations_come_from_their_one_definition():
    from vip_perception.backends import BACKENDS
    from vip_perception.runtime.engine import EngineConfig
    from vip_perception.runtime.selector import NO_FIT_POLICIES, QUANTILES
    s = Settings()
    for spec in parameters.SPECS:
        want = tuple(spec.default) if isinstance(spec.default, list) else spec.default
        assert getattr(s, spec.name) == want, spec.name
    assert [f.name for f in __import__("dataclasses").fields(Settings)] == \
        [spec.name for spec in parameters.SPECS]
    assert SPEC_BY_NAME["latency_quantile"].choices is QUANTILES
    assert SPEC_BY_NAME["on_no_fit"].choices is NO_FIT_POLICIES
    assert SPEC_BY_NAME["backend"].choices is BACKENDS
    assert parameters.engine_config(s) == EngineConfig(deadline_ms=50.0, margin_ms=1.0,
                                                       latency_quantile="p95",
                                                       on_no_fit="fastest", threads=0)


def test_vision_msgs_rejected_only_when_absent():
    reason = check_value("output_format", "vision_msgs")
    assert (reason is None) == parameters.vision_msgs_available()


def test_cross_parameter_rules_and_atomic_rejection():
    s = Settings()
    res = validate_change(s, [Parameter("deadline_ms", value=100.0), Parameter("margin_ms", value=60.0)])
    assert res.successful
    res = validate_change(s, [Parameter("miss_ratio_warn", value=0.9)])
    assert (res.successful, res.reason) == (
        False, "miss_ratio_warn (0.9) must not exceed miss_ratio_error (0.5)")


def test_bank_path_checked_cheaply(tmp_path):
    s = Settings()
    res = validate_change(s, [Parameter("bank", value=str(tmp_path / "nope"))])
    assert not res.successful and "not a directory" in res.reason
    res = validate_change(s, [Parameter("bank", value=str(tmp_path))])
    assert not res.successful and "manifest.json" in res.reason
    (tmp_path / "manifest.json").write_text("{broken")
    res = validate_change(s, [Parameter("bank", value=str(tmp_path))])
    assert not res.successful and "unreadable" in res.reason


def _yaml_type(v):
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list"}[type(v)]


DETECTOR_CONFIG = os.path.join(ROOT, "config", "vip_perception_detector.yaml")


def test_detector_preset_matches_declarations_and_names_a_shipped_bank():
    from vip_perception.share import bank_directory
    with open(DETECTOR_CONFIG) as fh:
        cfg = yaml.safe_load(fh)
    node_params = cfg[NODE_KEY]["ros__parameters"]
    for key, value in node_params.items():
        assert key in SPEC_BY_NAME, f"{DETECTOR_CONFIG}: unknown node parameter {key}"
        assert check_value(key, value) is None, key
    for key, value in cfg[CAMERA_KEY]["ros__parameters"].items():
        assert key in camera_source.SPEC_BY_NAME, f"{DETECTOR_CONFIG}: unknown camera parameter {key}"
        assert _yaml_type(value) == _yaml_type(camera_source.SPEC_BY_NAME[key].default), key
        assert camera_source.check_value(key, value) is None, key
    bank = bank_directory(node_params["bank"])
    assert os.path.samefile(bank, os.path.join(ROOT, "config", "banks", "conveyor_detector"))
    assert check_bank_path("conveyor_detector") is None
    assert "not a directory, nor a shipped bank's name (fashion_mnist, station" in check_bank_path("no_such_bank")
    assert bank_directory("") == "" and bank_directory("/x/y") == "/x/y"


def test_yaml_keys_and_types_match_declarations():
    with open(CONFIG) as fh:
        cfg = yaml.safe_load(fh)
    node_params = cfg[NODE_KEY]["ros__parameters"]
    for key, value in node_params.items():
        assert key in SPEC_BY_NAME, f"{CONFIG}: unknown node parameter {key}"
        spec = SPEC_BY_NAME[key]
        assert _yaml_type(value) == _yaml_type(spec.default), f"{key}: YAML {value!r} vs default {spec.default!r}"
        if isinstance(value, list) and value and key == "roi":
            assert all(isinstance(v, int) for v in value)
        assert check_value(key, value) is None, key
    assert set(SPEC_BY_NAME) - set(node_params) <= {"roi"}, "declared but missing from the YAML"
    cam = cfg[CAMERA_KEY]["ros__parameters"]
    for key, value in cam.items():
        assert key in camera_source.SPEC_BY_NAME, f"{CONFIG}: unknown camera parameter {key}"
        assert _yaml_type(value) == _yaml_type(camera_source.SPEC_BY_NAME[key].default), key
        assert camera_source.check_value(key, value) is None, key


@pytest.mark.parametrize("namespace", ["", "cell1/left"])
def test_yaml_loads_through_rcl_and_declares(tmp_path, namespace):
    """The real parser: a node named vip_perception declares every parameter from the file,
    in the root namespace and under one (as `ros2 launch ... namespace:=` puts it)."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=["x", "--ros-args", "--params-file", CONFIG])
    try:
        node = rclpy.create_node("vip_perception", namespace=namespace, context=ctx)
        settings = parameters.declare(node)
        with open(CONFIG) as fh:
            expected = yaml.safe_load(fh)[NODE_KEY]["ros__parameters"]
        for key, value in expected.items():
            got = getattr(settings, key)
            assert (list(got) if isinstance(got, tuple) else got) == value, key
        desc = node.describe_parameter("image_topics")
        assert desc.read_only and desc.description
        assert node.describe_parameter("deadline_ms").floating_point_range
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def _console_scripts():
    with open(os.path.join(ROOT, "setup.py")) as fh:
        text = fh.read()
    return set(re.findall(r'"([\w\-]+)\s*=\s*[\w\.]+:\w+"', text))


def test_launch_file_names_existing_executables_and_files():
    tree = ast.parse(open(LAUNCH).read(), LAUNCH)
    executables = _keyword_constants(tree, "executable")
    assert set(executables) == {"vip_perception_node", "vip_perception_lifecycle_node", "vip_perception_camera"}
    assert set(executables) <= _console_scripts()
    consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert consts["PACKAGE"] == "vip_perception"
    for key in ("CONFIG_FILE", "PROFILE_FILE"):
        assert os.path.isfile(os.path.join(ROOT, "config", consts[key])), consts[key]
    assert re.fullmatch(r".*fastdds.*\.xml", consts["PROFILE_FILE"])
    names = _keyword_constants(tree, "name")
    assert "vip_perception" in names and "vip_perception_camera" in names
    for config in (CONFIG, DETECTOR_CONFIG):
        with open(config) as fh:
            assert set(yaml.safe_load(fh)) == {NODE_KEY, CAMERA_KEY}, config
        assert {k.rpartition("/")[2] for k in (NODE_KEY, CAMERA_KEY)} <= set(names)


def _keyword_constants(tree, arg: str) -> list:
    """Constant values passed as ``arg=...`` anywhere in the file (Node(executable=...))."""
    return [n.value.value for n in ast.walk(tree)
            if isinstance(n, ast.keyword) and n.arg == arg and isinstance(n.value, ast.Constant)]


def test_fastdds_profile_is_valid_xml_with_16mb_shm():
    import xml.etree.ElementTree as ET
    root = ET.parse(os.path.join(ROOT, "config", "fastdds_shm_profile.xml")).getroot()
    ns = {"d": "http://www.eprosima.com"}
    sizes = [e.text for e in root.iterfind(".//d:transport_descriptor/d:segment_size", ns)]
    assert sizes == [str(16 * 1024 * 1024)]
    part = root.find(".//d:participant", ns)
    assert part.get("is_default_profile") == "true"
    assert part.find(".//d:useBuiltinTransports", ns).text == "false"


def test_dds_env_respects_user_and_other_rmws():
    from vip_perception.ros.transport import PROFILE_VARS, dds_env
    add, why = dds_env({}, profile="/x.xml")
    assert add == {"FASTDDS_DEFAULT_PROFILES_FILE": "/x.xml"}  # Fast DDS 3: no deprecated var
    add, why = dds_env({"ROS_DISTRO": "humble"}, profile="/x.xml")
    assert add == {v: "/x.xml" for v in PROFILE_VARS}
    add, why = dds_env({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}, profile="/x.xml")
    assert add == {} and "kept" in why
    add, why = dds_env({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, profile="/x.xml")
    assert add == {} and "cyclonedds" in why


def test_backend_choices_come_from_the_backends_package():
    from vip_perception.backends import BACKENDS
    assert SPEC_BY_NAME["backend"].choices == BACKENDS and SPEC_BY_NAME["backend"].default == "torch"
    reason = check_value("backend", "tensorrt")
    assert reason and "backend" in reason and "one of" in reason
    assert check_value("backend", "onnxruntime") is None


def test_bank_check_sees_the_would_be_bank_and_backend_together():
    """bank and backend reload the bank: the check gets both final values, once per call."""
    calls = []

    def check(path, backend):
        calls.append((path, backend))
        return "backend onnxruntime rejected: no profile" if backend == "onnxruntime" else None

    s = Settings(bank="/b1")
    res = validate_change(s, [Parameter("backend", value="onnxruntime")], bank_check=check)
    assert not res.successful and "onnxruntime" in res.reason and calls == [("/b1", "onnxruntime")]
    res = validate_change(s, [Parameter("deadline_ms", value=80.0)], bank_check=check)
    assert res.successful and len(calls) == 1  # nothing to reload
    res = validate_change(s, [Parameter("bank", value=""), Parameter("backend", value="torch")],
                          bank_check=check)
    assert res.successful and calls[-1] == ("", "torch") and len(calls) == 2
    res = validate_change(s, [Parameter("backend", value="cuda")], bank_check=check)
    assert not res.successful and "backend" in res.reason and len(calls) == 2  # cheap check first


def test_launch_arguments_override_the_params_file_only_when_given():
    """`ros2 launch ... bank:= deadline_ms:= image_topic:=`: what each sets (the launch test runs
    them for real); empty leaves the file's value; a deadline that is not a number names the
    argument."""
    pytest.importorskip("launch_ros", reason="launch_ros is missing: see the launch_ros test group")
    import importlib.util

    spec = importlib.util.spec_from_file_location("vip_launch", LAUNCH)
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    assert launch_file.overrides("", "", "") == ({}, {})
    node, camera = launch_file.overrides("station", "33", "/cell1/cam/image_raw")
    assert node == {"bank": "station", "deadline_ms": 33.0, "image_topics": ["/cell1/cam/image_raw"]}
    assert camera == {"topic": "/cell1/cam/image_raw"}
    assert check_value("deadline_ms", node["deadline_ms"]) is None
    with pytest.raises(ValueError, match="deadline_ms:=fast: not a number"):
        launch_file.overrides("", "fast", "")
