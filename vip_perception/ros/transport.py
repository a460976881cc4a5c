"""Which DDS settings the node's processes get: the shipped Fast DDS shared-memory profile.

Why: best-effort full-size images between processes lose fragments with Fast DDS defaults
(see config/fastdds_shm_profile.xml). The profile is applied only when the RMW is Fast DDS
and the user has not chosen a profile file already; other RMWs are left alone. No rclpy here:
the launch file, the demo and the benchmark all call it before starting processes.
"""
from __future__ import annotations

import os

from vip_perception.share import share_path

PROFILE_NAME = "fastdds_shm_profile.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FASTDDS2_DISTROS = ("humble", "iron", "jazzy")
FASTDDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")  # "" = the default RMW


def profile_path() -> str | None:
    """The shipped profile: installed share/ (colcon, pip) or the source tree."""
    path = share_path("config/" + PROFILE_NAME)
    return None if path is None else str(path)


def dds_env(env: dict | None = None, profile: str | None = None) -> tuple[dict, str]:
    """Environment additions for child processes, and a sentence saying what was decided."""
    env = dict(os.environ if env is None else env)
    rmw = env.get("RMW_IMPLEMENTATION", "")
    if rmw not in FASTDDS_RMWS:
        return {}, f"RMW {rmw}: Fast DDS profile not applied (use that RMW's own settings)"
    for var in PROFILE_VARS:
        if env.get(var):
            return {}, f"{var}={env[var]} already set by the user: kept"
    profile = profile or profile_path()
    if profile is None:
        return {}, f"{PROFILE_NAME} not found: Fast DDS defaults (large images may be lost)"
    return ({var: profile for var in profile_vars(env)},
            f"Fast DDS profile {profile} (SHM, 16 MB segment)")


def profile_vars(env: dict) -> tuple[str, ...]:
    """Fast DDS 3 (Kilted, Rolling, the PyPI wheels) reads FASTDDS_DEFAULT_PROFILES_FILE and
    warns that FASTRTPS_DEFAULT_PROFILES_FILE is deprecated; Fast DDS 2 (Humble, Jazzy)
    reads the latter. Set both only where Fast DDS 2 may be in use."""
    if env.get("ROS_DISTRO", "") in FASTDDS2_DISTROS:
        return PROFILE_VARS
    return PROFILE_VARS[:1]
