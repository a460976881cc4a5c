"""A publisher that floods an image topic with malformed sensor_msgs/Image at full rate.

Why: a node on a shared robot network must keep serving its camera while some other process
sends garbage (a driver bug, a wrong encoding, a truncated frame). The messages cover every
reason the node counts (wrong step, truncated data, unknown encoding, zero size, huge
dimensions, big-endian 16-bit) and stay small, so the flood is limited by DDS and the
subscriber, not by copying pixels. Run as its own process so it competes like a real one:

    python -m vip_perception.ros.tools.flood --topic image_raw --seconds 10
"""
from __future__ import annotations

import argparse
import sys
import time

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image

from vip_perception.ros import qos

# (reason the node should count, fields) for a 48x64 image whose good form is bgr8, step 192.
MALFORMED = (
    ("bad_step", dict(encoding="bgr8", height=48, width=64, step=10, n=480)),
    ("size_mismatch", dict(encoding="bgr8", height=48, width=64, step=192, n=100)),
    ("unknown_encoding", dict(encoding="yuv_weird", height=48, width=64, step=192, n=9216)),
    ("zero_size", dict(encoding="bgr8", height=0, width=0, step=0, n=0)),
    ("too_large", dict(encoding="bgr8", height=100000, width=100000, step=300000, n=16)),
    ("bad_endianness", dict(encoding="mono16", height=48, width=64, step=128, n=6144, big=1)),
)


def malformed_messages(frame_id: str = "malformed") -> list[tuple[str, Image]]:
    out = []
    for reason, f in MALFORMED:
        msg = Image()
        msg.header.frame_id = frame_id
        msg.height, msg.width, msg.step = f["height"], f["width"], f["step"]
        msg.encoding, msg.is_bigendian = f["encoding"], f.get("big", 0)
        msg.data = bytes(f["n"])
        out.append((reason, msg))
    return out


def flood(node: Node, topic: str, seconds: float, reliability: str = "best_effort") -> dict:
    """Publish malformed messages back to back for ``seconds``; returns counts and rate."""
    pub = node.create_publisher(Image, topic, qos.subscription_qos(reliability, depth=10))
    msgs = malformed_messages()
    sent = {reason: 0 for reason, _ in msgs}
    clock = node.get_clock()
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds and rclpy.ok(context=node.context):
        reason, msg = msgs[i % len(msgs)]
        msg.header.stamp = clock.now().to_msg()
        pub.publish(msg)
        sent[reason] += 1
        i += 1
    elapsed = time.monotonic() - start
    node.destroy_publisher(pub)
    return {"sent": i, "seconds": elapsed, "rate_hz": i / elapsed if elapsed else 0.0,
            "by_reason": sent}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", default="image_raw")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--wait-subscribers", type=int, default=1,
                        help="wait (at most 30 s) for this many subscribers first")
    parser.add_argument("--reliability", default="best_effort", choices=("best_effort", "reliable"))
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=[sys.argv[0], *ros_args])
    node = rclpy.create_node("vip_perception_flood")
    try:
        until = time.monotonic() + 30.0
        while (node.count_subscribers(args.topic) < args.wait_subscribers
               and time.monotonic() < until):
            rclpy.spin_once(node, timeout_sec=0.1)
        print("flood: starting", flush=True)
        r = flood(node, args.topic, args.seconds, args.reliability)
        print(f"flood: published {r['sent']} malformed messages in {r['seconds']:.1f} s "
              f"({r['rate_hz']:.0f}/s)", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
