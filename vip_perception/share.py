"""Where the package's data files (config/, launch/) are, however it was installed.

colcon installs them under the ament share directory, ``pip install`` (data_files) under
``<prefix>/share/vip_perception``, and a source checkout has them next to the package.
Core module (no rclpy): the launch file, native-kernel loader, bank builders, demo and
benchmarks all find their files here.
"""
from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "vip_perception"


def share_candidates(relative: str) -> list[Path]:
    out = []
    try:
        from ament_index_python.packages import get_package_share_directory
        out.append(Path(get_package_share_directory(PACKAGE)) / relative)
    except Exception:  # noqa: BLE001 - not installed with colcon / no ament index
        pass
    out.append(Path(__file__).resolve().parents[1] / relative)  # source checkout
    out.append(Path(sys.prefix) / "share" / PACKAGE / relative)  # pip data_files
    return out


def share_path(relative: str) -> Path | None:
    """The first existing ``relative`` (e.g. "config/vip_perception.yaml"), or None."""
    for c in share_candidates(relative):
        if c.exists():
            return c
    return None


SHIPPED_BANKS = ("fashion_mnist", "station", "conveyor_detector")
SHIPPED_BANKS_HELP = "or the name of a shipped bank (" + ", ".join(SHIPPED_BANKS) + ")"  # for --help texts


def bank_directory(value: str) -> str:
    """The directory a ``bank`` parameter names: a path as given, or the name of a shipped bank
    (``conveyor_detector``, ``fashion_mnist``) found under ``config/banks/`` wherever the
    package is installed, so a params file can name a shipped bank without knowing the install
    prefix. An existing directory always wins over a shipped name."""
    if not value or Path(value).is_dir() or value not in SHIPPED_BANKS:
        return value
    found = share_path(f"config/banks/{value}/manifest.json")
    return str(found.parent) if found is not None else value
