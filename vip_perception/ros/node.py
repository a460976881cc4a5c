"""`vip_perception_node`: camera topics in, classifications (or detections), timing and
/diagnostics out, chosen per frame against a deadline. All the work is in ``perception.py``;
this is the plain (always active) node and its ``main``.
"""
from __future__ import annotations

import sys

import rclpy
from rclpy.node import Node

from .perception import Perception
from .summary import format_summary

NODE_NAME = "vip_perception"


class VipPerceptionNode(Node):
    """Configured and active from construction; ``close()`` stops the worker."""

    def __init__(self, name: str = NODE_NAME, engine_factory=None, record_stages: bool = False,
                 **kwargs):
        super().__init__(name, **kwargs)
        self.perception = Perception(self, engine_factory=engine_factory,
                                     record_stages=record_stages)
        self.perception.configure()
        self.perception.activate()

    def close(self) -> dict:
        """Stop processing and return the run's summary (counts, latencies, member usage)."""
        self.perception.deactivate()
        return self.perception.summary()


def spin_until_shutdown(node, summarize) -> int:
    """Spin with ``executor.make_executor()`` (why that one: see ros/executor.py);
    SIGINT/SIGTERM end it quietly with the final summary on stdout. The process's start-up
    objects are frozen first (``runtime.collector``): a full garbage collection then takes
    well under a millisecond instead of about 90 ms in the middle of a frame."""
    from rclpy.executors import ExternalShutdownException

    from ..runtime.collector import freeze_start_up
    from .executor import make_executor

    frozen = freeze_start_up()  # start-up is done: full collections skip what it allocated
    node.get_logger().debug(f"garbage collector: {frozen} start-up objects frozen")
    executor = make_executor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if node.context.ok():
            raise
        # a callback raced the SIGINT/SIGTERM shutdown ("context is invalid"): expected
    finally:
        text = summarize()
        print(text, flush=True)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    try:
        node = VipPerceptionNode()
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - a message, not a traceback
        if isinstance(exc, KeyboardInterrupt) or not rclpy.ok():  # signal while starting
            print("vip_perception_node: interrupted during start-up", file=sys.stderr, flush=True)
            return 0
        print(f"vip_perception_node: cannot start: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    return spin_until_shutdown(node, lambda: format_summary(node.close()))


if __name__ == "__main__":
    sys.exit(main())
