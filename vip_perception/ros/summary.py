"""The node's final summary as text (printed on shutdown by both node executables)."""
from __future__ import annotations


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


def format_summary(summary: dict) -> str:
    """``Perception.summary()`` -> lines: the node, uptime and bank, then one per camera with
    its counts, latency p50, node overhead p50 and member usage."""
    bank = summary["bank"]
    where = f"bank {bank['name']} ({bank['path']})" if bank.get("path") else "no bank loaded"
    if bank.get("path") and bank.get("backend", "torch") != "torch":
        where += f" on {bank['backend']}"
    lines = [f"{summary['node']}: final summary after {summary['uptime_s']:.1f} s, {where}"]
    for c in summary["cameras"]:
        lines.append(
            f"  {c['topic']}: received {c['received']}, processed {c['processed']}, deadline "
            f"misses {c['deadline_misses']}, dropped stale {c['dropped_stale']}, replaced "
            f"{c['replaced_by_newer']}, malformed {c['malformed']}, skipped {c['skipped']}, "
            f"errors {c['errors']}, latency p50 {_ms(c['latency_ms_p50'])}, node overhead p50 "
            f"{_ms(c['overhead_ms_p50'])}, members {c['member_usage']}")
    return "\n".join(lines)
