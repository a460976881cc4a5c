"""The repository is a valid ament_python package: colcon identifies and installs it.

catkin-pkg validates package.xml strictly and colcon silently falls back to a plain Python
package when it fails, so the identification is asserted, not assumed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXECUTABLES = ["vip_perception_node", "vip_perception_lifecycle_node", "vip_perception_camera", "vip-perception"]
IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "__pycache__", "*.egg-info",
                                 ".pytest_cache", ".hypothesis", "runs", "benchmarks")


def _package_files(base: Path) -> set[str]:
    return {str(p.relative_to(base)) for p in base.rglob("*.py") if "__pycache__" not in p.parts}


def test_every_source_directory_is_a_package():
    """find_packages() (setup.py) installs only directories with an __init__.py: a new folder
    without one (commands/, tasks/, ros/tools/, ...) would be missing from every install."""
    missing = sorted(str(d.relative_to(ROOT)) for d in {p.parent for p in (ROOT / "vip_perception").rglob("*.py")}
                     if not (d / "__init__.py").is_file())
    assert not missing, f"directories with Python files but no __init__.py: {missing}"


def test_package_xml_is_valid_format3():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    pkg = catkin_pkg.parse_package(str(ROOT / "package.xml"))
    pkg.validate()
    assert pkg.package_format == 3
    assert pkg.get_build_type() == "ament_python"
    exec_deps = {d.name for d in pkg.exec_depends}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "vision_msgs", "cv_bridge",
            "python3-numpy", "python3-opencv"} <= exec_deps
    assert "python3-pytest" in {d.name for d in pkg.test_depends}


@pytest.fixture(scope="module")
def colcon_workspace(tmp_path_factory):
    if not (BIN / "colcon").exists():
        pytest.skip("colcon is not installed in this environment (scripts/test installs it)")
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(ROOT, ws / "src" / "vip_perception", ignore=IGNORED)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    listing = subprocess.run(["colcon", "list"], cwd=ws, env=env, capture_output=True, text=True, check=True)
    build = subprocess.run(["colcon", "build"], cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    return ws, listing.stdout, env


def test_colcon_identifies_ament_python(colcon_workspace):
    _, listing, _ = colcon_workspace
    assert "vip_perception" in listing and "(ros.ament_python)" in listing, listing


def test_colcon_installs_share_and_executables(colcon_workspace):
    ws, _, _ = colcon_workspace
    prefix = ws / "install" / "vip_perception"
    share = prefix / "share" / "vip_perception"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "vip_perception.launch.py").is_file()
    assert (share / "config" / "vip_perception.yaml").is_file()
    assert list((share / "config").glob("*fastdds*.xml"))
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "vip_perception").is_file()
    for exe in EXECUTABLES:
        assert (prefix / "lib" / "vip_perception" / exe).is_file(), exe


def test_colcon_installs_every_module(colcon_workspace):
    """Every source module, the command modules the CLI table names included, is installed."""
    from vip_perception import cli

    ws, _, _ = colcon_workspace
    (installed,) = (ws / "install" / "vip_perception" / "lib").glob("python3*/site-packages/vip_perception")
    source = ROOT / "vip_perception"
    missing = sorted(_package_files(source) - _package_files(installed))
    assert not missing, f"not installed: {missing}"
    for module, _ in cli.COMMANDS.values():
        assert (installed.parent / (module.replace(".", "/") + ".py")).is_file(), f"{module} is not installed"


def test_sourced_workspace_resolves_share_directory(colcon_workspace):
    ws, _, env = colcon_workspace
    code = ("from ament_index_python.packages import get_package_share_directory as g;"
            "print(g('vip_perception'))")
    out = subprocess.run(["bash", "-c", f"source install/setup.bash && python -c \"{code}\""],
                         cwd=ws, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(ws / "install" / "vip_perception" / "share" / "vip_perception")


def test_ros_wheels_are_not_install_requirements():
    """A ROS 2 distribution's rclpy must never be fought by pip."""
    setup_py = (ROOT / "setup.py").read_text()
    install_requires = setup_py.split("install_requires=[", 1)[1].split("]", 1)[0]
    assert "ros-" not in install_requires and "rclpy" not in install_requires
    assert "ros-rclpy" in (ROOT / "requirements-ros.txt").read_text()
