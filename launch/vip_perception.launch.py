"""Camera source + perception node with config/vip_perception.yaml (launch_ros).

    ros2 launch vip_perception vip_perception.launch.py [use_camera:=false] [params_file:=...]
        [namespace:=cell1] [bank:=station] [deadline_ms:=33.0] [image_topic:=/camera/image_raw]
        [managed:=true [autostart:=false]]

``bank``, ``deadline_ms`` and ``image_topic`` override the params file for this launch (empty,
the default: the file's value); ``image_topic`` sets the camera's ``topic`` and the node's
``image_topics`` together, so a real camera is wired with ``use_camera:=false
image_topic:=...``. ``namespace`` puts both nodes, and their relative topics, under it.
``managed:=true`` starts the perception node as a managed (lifecycle) node, same name and
parameters, which launch takes through configure and activate unless ``autostart:=false``
(then ``ros2 lifecycle set`` drives it).

With Fast DDS as the RMW and no profile chosen by the user, both processes get the shipped
shared-memory profile (config/fastdds_shm_profile.xml): without it, best-effort full-size
images between processes lose fragments. Other RMWs keep their own settings.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription

PACKAGE = "vip_perception"
CONFIG_FILE = "vip_perception.yaml"
PROFILE_FILE = "fastdds_shm_profile.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def overrides(bank: str, deadline_ms: str, image_topic: str) -> tuple[dict, dict]:
    """(node parameters, camera parameters) the launch arguments set over the params file;
    an empty argument sets nothing. ValueError, naming the argument, for a deadline that is
    not a number (the node itself rejects one out of range, with the reason)."""
    node, camera = {}, {}
    if bank:
        node["bank"] = bank
    if deadline_ms:
        try:
            node["deadline_ms"] = float(deadline_ms)
        except ValueError:
            raise ValueError(f"deadline_ms:={deadline_ms}: not a number of milliseconds") from None
    if image_topic:
        node["image_topics"] = [image_topic]
        camera["topic"] = image_topic
    return node, camera


def _transition(node, transition_id: int) -> EmitEvent:
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context)
           for name in ("params_file", "namespace", "bank", "deadline_ms", "image_topic", "managed", "autostart")}
    node_params, camera_params = overrides(arg["bank"], arg["deadline_ms"], arg["image_topic"])
    camera = Node(package=PACKAGE, executable="vip_perception_camera", name="vip_perception_camera",
                  namespace=arg["namespace"], parameters=[arg["params_file"], *filter(None, [camera_params])],
                  output="screen", condition=IfCondition(LaunchConfiguration("use_camera")))
    params = [arg["params_file"], *filter(None, [node_params])]
    if arg["managed"].lower() not in ("true", "1"):
        return [camera, Node(package=PACKAGE, executable="vip_perception_node", name="vip_perception",
                             namespace=arg["namespace"], parameters=params, output="screen")]
    node = LifecycleNode(package=PACKAGE, executable="vip_perception_lifecycle_node", name="vip_perception",
                         namespace=arg["namespace"], parameters=params, output="screen")
    actions = [camera, node]
    if arg["autostart"].lower() in ("true", "1"):  # configure now, activate once inactive
        actions += [RegisterEventHandler(OnStateTransition(
                        target_lifecycle_node=node, goal_state="inactive",
                        entities=[_transition(node, Transition.TRANSITION_ACTIVATE)])),
                    _transition(node, Transition.TRANSITION_CONFIGURE)]
    return actions


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    params = os.path.join(share, "config", CONFIG_FILE)
    profile = os.path.join(share, "config", PROFILE_FILE)
    actions = [
        DeclareLaunchArgument("params_file", default_value=params,
                              description="ros__parameters for both nodes"),
        DeclareLaunchArgument("use_camera", default_value="true",
                              description="start the vip_perception_camera source"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of both nodes and their relative topics"),
        DeclareLaunchArgument("bank", default_value="",
                              description="the node's bank: a directory or a shipped bank's name "
                                          "(empty: the params file's)"),
        DeclareLaunchArgument("deadline_ms", default_value="",
                              description="the node's per-frame deadline, ms (empty: the params file's)"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="the camera topic, for the camera source and the node "
                                          "(empty: the params file's)"),
        DeclareLaunchArgument("managed", default_value="false",
                              description="start the perception node as a managed (lifecycle) node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="with managed:=true, configure and activate it at launch"),
    ]
    fastdds = os.environ.get("RMW_IMPLEMENTATION", "") in ("", "rmw_fastrtps_cpp",
                                                           "rmw_fastrtps_dynamic_cpp")
    if fastdds and not any(os.environ.get(v) for v in PROFILE_VARS):
        # Fast DDS 2 (Humble, Jazzy) reads FASTRTPS_*; Fast DDS 3 reads FASTDDS_* and warns
        # about the other one.
        fastdds2 = os.environ.get("ROS_DISTRO", "") in ("humble", "iron", "jazzy")
        actions += [SetEnvironmentVariable(v, profile) for v in PROFILE_VARS[: 2 if fastdds2 else 1]]
    actions.append(OpaqueFunction(function=_nodes))
    return LaunchDescription(actions)
