"""Freezing start-up objects: counted, and garbage made afterwards is still collected."""
import gc

from vip_perception.runtime.collector import freeze_start_up


class Node:
    def __init__(self):
        self.other = None


def test_freeze_keeps_start_up_objects_out_of_collections_and_collects_new_cycles():
    kept = [Node() for _ in range(100)]
    try:
        frozen = freeze_start_up()
        assert frozen == gc.get_freeze_count() and frozen >= len(kept)
        assert not any(gc.is_tracked(k) and k in gc.get_objects() for k in kept[:3])  # frozen: not walked
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made after the freeze
        del a, b
        assert gc.collect() >= 2  # still found and freed
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
