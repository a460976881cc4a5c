"""ament_python / pip build of vip_perception.

ROS 2 users build it with colcon (rclpy and messages come from their distribution); the
embedded default installs it editable into `.venv` next to the `ros-*` wheels listed in
`requirements-ros.txt`, which are deliberately not install requirements here.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vip_perception"


def _files(pattern):
    return [p for p in glob(pattern, recursive=True) if not p.endswith("/")]


def _bank_data_files():
    """Install every shipped bank file under share/<pkg>/config/banks/<bank>/..."""
    out = {}
    for path in _files("config/banks/**/*"):
        import os

        if os.path.isfile(path):
            out.setdefault(os.path.join("share", PACKAGE, os.path.dirname(path)), []).append(path)
    return sorted(out.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch/*.py")),
        (f"share/{PACKAGE}/config", [p for p in _files("config/*") if "." in p.rsplit("/", 1)[-1]]),
        (f"share/{PACKAGE}/kernels", _files("kernels/*.cpp") + _files("kernels/*.md")),
        *_bank_data_files(),
    ],
    install_requires=[
        "numpy",
        "torch>=2.4",
        "torchvision>=0.19",
        "safetensors",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "rosbags",
        "rosbags-image",
        "pycocotools",
        "psutil",
        "jsonschema",
        "threadpoolctl",
    ],
    extras_require={
        "opencv": ["opencv-python-headless"],
        "onnx": ["onnx", "onnxruntime"],
    },
    zip_safe=True,
    maintainer="vip_perception maintainers",
    maintainer_email="maintainers@vip-perception.org",
    description="Deadline-aware ViP CNN perception for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "vip-perception = vip_perception.cli:main",
            "vip_perception_node = vip_perception.ros.node:main",
            "vip_perception_lifecycle_node = vip_perception.ros.lifecycle_node:main",
            "vip_perception_camera = vip_perception.ros.camera_source:main",
        ],
    },
)
