"""runtime.serving_thread: calls and the loop step share one thread and never overlap."""
import threading

import pytest

from vip_perception.runtime.serving_thread import ServingThread


def test_calls_run_on_the_thread_in_order_and_return_or_raise_there():
    serving, order = ServingThread(name="t_calls"), []
    assert serving.call(lambda a, b=0: (threading.get_ident(), a + b), 2, b=3) == (serving.thread.ident, 5)
    for i in range(5):
        serving.call(order.append, i)
    assert order == [0, 1, 2, 3, 4]
    with pytest.raises(KeyError, match="missing"):
        serving.call(lambda: {}["missing"])
    assert serving.call(lambda: serving.call(lambda: "inline")) == "inline"  # no deadlock on itself
    assert not serving.on_thread() and serving.call(serving.on_thread)


def test_the_loop_step_repeats_between_calls_and_stops_before_set_loop_returns():
    serving, state = ServingThread(name="t_loop"), {"in_step": False, "steps": 0, "overlaps": 0}
    three = threading.Event()

    def step():
        state["in_step"] = True
        state["steps"] += 1
        if state["steps"] >= 3:
            three.set()
        threading.Event().wait(0.002)
        state["in_step"] = False

    def probe():
        state["overlaps"] += state["in_step"]  # a call never runs inside a step

    serving.set_loop(step)
    assert three.wait(5.0)
    for _ in range(20):
        serving.call(probe)
    serving.set_loop(None)
    steps = state["steps"]
    assert not state["in_step"] and state["overlaps"] == 0
    threading.Event().wait(0.05)
    assert state["steps"] == steps  # stopped


def test_a_step_that_raises_stops_the_loop_and_is_kept_the_thread_lives_on():
    serving = ServingThread(name="t_error")

    def step():
        raise RuntimeError("frame loop broke")

    serving.set_loop(step)
    for _ in range(1000):
        if serving.loop_error is not None:
            break
        threading.Event().wait(0.01)
    assert isinstance(serving.loop_error, RuntimeError)
    assert serving.call(lambda: 7) == 7 and serving.thread.is_alive()


def test_set_loop_gives_up_waiting_for_a_stuck_step_and_stops_the_loop_once_it_returns():
    serving, release, entered, runs = ServingThread(name="t_stuck"), threading.Event(), threading.Event(), []

    def step():
        runs.append(1)
        entered.set()
        release.wait()

    serving.set_loop(step)
    assert entered.wait(5.0)
    assert serving.set_loop(None, timeout_s=0.05) is False  # the step is still blocked
    release.set()
    assert serving.call(lambda: len(runs)) == 1  # after it returned, the loop was stopped
    assert serving.set_loop(None, timeout_s=5.0) is True
