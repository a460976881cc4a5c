"""`vip_perception_lifecycle_node`: the same node as a managed (lifecycle) node.

configure loads the bank and creates publishers/subscriptions, activate starts the worker,
deactivate stops it (frames arriving meanwhile are counted, not processed), cleanup frees the
engine and every entity. The work itself is ``Perception``, shared with the plain node.
"""
from __future__ import annotations

import sys

import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from .node import NODE_NAME, spin_until_shutdown
from .perception import Perception
from .summary import format_summary


class VipPerceptionLifecycleNode(LifecycleNode):
    def __init__(self, name: str = NODE_NAME, engine_factory=None, **kwargs):
        super().__init__(name, **kwargs)
        self.perception = Perception(self, engine_factory=engine_factory)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.perception.configure()
        except Exception as exc:  # noqa: BLE001 - report, stay unconfigured
            self.get_logger().error(f"configure failed: {exc}")
            self.perception.cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.perception.activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.perception.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.perception.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.perception.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> dict:
        self.perception.deactivate()
        return self.perception.summary()


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = VipPerceptionLifecycleNode()
    node.get_logger().info("unconfigured; drive it with lifecycle transitions "
                           "(configure, activate, deactivate, cleanup)")
    return spin_until_shutdown(node, lambda: format_summary(node.close()))


if __name__ == "__main__":
    sys.exit(main())
