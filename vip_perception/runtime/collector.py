"""Python's cyclic garbage collector beside a deadline: freeze what start-up allocated.

A full (generation 2) collection walks every object the collector tracks. With torch imported
and the station bank loaded that is about 215,000 objects, and one collection took about 90 ms
here (``benchmarks/gc_pause.json``), inside whichever frame it landed in: a sure miss at a
15-30 ms deadline. CPython starts one whenever the objects that survived younger collections
since the last one reach a quarter of the long-lived ones, so a process that keeps any
per-frame history pays it every so often, at no time it chooses.

``gc.freeze()`` moves every object alive at that moment to a permanent generation that
collections no longer walk. What start-up allocates (modules, torch's own objects, the bank)
lives as long as the process anyway, so later full collections walk only what came after it
(a few microseconds in the same measurement, where nothing else had been allocated since).

Who calls it: the owner of the process, once its start-up is done (``ros.node``'s spin, the
``evaluate deadline`` command), never a library function a host program calls, because it
changes the whole process. The cost: a reference cycle among frozen objects that becomes
garbage later is never collected (reference counting still frees everything that is not in a
cycle, e.g. a swapped-out bank's tensors and modules).
"""
from __future__ import annotations

import gc


def freeze_start_up() -> int:
    """Collect once (so that start-up's own garbage is not kept forever), then freeze every
    object still alive (``gc.freeze``). Returns the number of objects now frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
