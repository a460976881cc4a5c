"""Subscription QoS, how it is logged, and the "publishers but no messages" check.

Why: a QoS mismatch (a RELIABLE subscriber never hears a BEST_EFFORT publisher) is the most
frequent "no detections" complaint against peer nodes. The node states its QoS at start and
names the mismatch when a topic has publishers but nothing arrives.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

REPEAT_S = 30.0  # a camera's silent-topic warning is repeated at most this often


def subscription_qos(reliability: str = "best_effort", depth: int = 1) -> QoSProfile:
    """Sensor-data QoS with depth 1: only the newest frame matters for deadline work."""
    rel = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel,
                      durability=DurabilityPolicy.VOLATILE)


def describe(qos: QoSProfile) -> str:
    return (f"reliability={qos.reliability.name.lower()} durability={qos.durability.name.lower()} "
            f"history={qos.history.name.lower()} depth={qos.depth}")


def silent_topic_warning(topic: str, ours: QoSProfile, publishers: list, seconds: float) -> str | None:
    """Message for a topic that has publishers but delivered nothing for ``seconds``; None if
    there are no publishers (nothing to warn about: the camera is simply not up)."""
    if not publishers:
        return None
    hint = ""
    if ours.reliability == ReliabilityPolicy.RELIABLE and any(
            p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers):
        hint = (" A publisher is BEST_EFFORT and this subscription is RELIABLE: they never "
                "connect; set reliability:=best_effort.")
    else:
        hint = (" Large images over Fast DDS defaults lose fragments under best effort: use "
                "the shipped config/fastdds_shm_profile.xml (FASTDDS_DEFAULT_PROFILES_FILE).")
    return (f"topic {topic} has {len(publishers)} publisher(s) but no message arrived in "
            f"{seconds:.0f} s (subscription QoS: {describe(ours)}).{hint}")


def silent_topic_warnings(node, subs: list, cameras: dict, ours: QoSProfile, since: float,
                          now: float, warn_after_s: float, warned: dict) -> list[str]:
    """New warnings for cameras (``subs`` in ``cameras`` order) silent for ``warn_after_s``
    (counted from their last frame, else from ``since``) whose topic has publishers; at most
    one per camera per REPEAT_S (``warned`` {camera: time} is updated in place)."""
    out = []
    for sub, (camera, st) in zip(subs, cameras.items()):
        silent = now - (st.last_received if st.last_received is not None else since)
        if silent < warn_after_s or now - warned.get(camera, 0.0) < REPEAT_S:
            continue
        warning = silent_topic_warning(sub.topic_name, ours,
                                       node.get_publishers_info_by_topic(sub.topic_name), silent)
        if warning:
            warned[camera] = now
            out.append(warning)
    return out
