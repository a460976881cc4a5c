"""Camera source + perception node with config/vip_perception.yaml (launch_ros).

    ros2 launch vip_perception vip_perception.launch.py [use_camera:=false] [params_file:=...]

With Fast DDS as the RMW and no profile chosen by the user, both processes get the shipped
shared-memory profile (config/fastdds_shm_profile.xml): without it, best-effort full-size
images between processes lose fragments. Other RMWs keep their own settings.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "vip_perception"
CONFIG_FILE = "vip_perception.yaml"
PROFILE_FILE = "fastdds_shm_profile.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    params = os.path.join(share, "config", CONFIG_FILE)
    profile = os.path.join(share, "config", PROFILE_FILE)
    actions = [
        DeclareLaunchArgument("params_file", default_value=params,
                              description="ros__parameters for both nodes"),
        DeclareLaunchArgument("use_camera", default_value="true",
                              description="start the vip_perception_camera source"),
    ]
    fastdds = os.environ.get("RMW_IMPLEMENTATION", "") in ("", "rmw_fastrtps_cpp",
                                                           "rmw_fastrtps_dynamic_cpp")
    if fastdds and not any(os.environ.get(v) for v in PROFILE_VARS):
        # Fast DDS 2 (Humble, Jazzy) reads FASTRTPS_*; Fast DDS 3 reads FASTDDS_* and warns
        # about the other one.
        fastdds2 = os.environ.get("ROS_DISTRO", "") in ("humble", "iron", "jazzy")
        actions += [SetEnvironmentVariable(v, profile) for v in PROFILE_VARS[: 2 if fastdds2 else 1]]
    actions += [
        Node(package=PACKAGE, executable="vip_perception_camera", name="vip_perception_camera",
             parameters=[LaunchConfiguration("params_file")], output="screen",
             condition=IfCondition(LaunchConfiguration("use_camera"))),
        Node(package=PACKAGE, executable="vip_perception_node", name="vip_perception",
             parameters=[LaunchConfiguration("params_file")], output="screen"),
    ]
    return LaunchDescription(actions)
