"""/diagnostics for the node: one DiagnosticStatus per camera plus one for the engine.

Why diagnostic_msgs and not a custom topic: rqt_robot_monitor and diagnostic_aggregator
already understand it (names prefixed by the node name, hardware_id set, key/value strings,
OK/WARN/ERROR/STALE). Levels come from ``level_for`` (pure) so thresholds are testable.
"""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from vip_perception.quantiles import percentile

from .parameters import Settings
from .stats import CameraStats, Snapshot, rates

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
                          DiagnosticStatus.STALE)


def level_for(r: dict, silent_s: float | None, s: Settings) -> tuple[bytes, str]:
    """(level, message) of one camera from its per-period rates and silence."""
    if silent_s is None:
        return STALE, "no frame received yet"
    if silent_s > s.stale_after_s:
        return STALE, f"no frame for {silent_s:.1f} s"
    if r["miss_ratio"] >= s.miss_ratio_error or r["drop_ratio"] >= s.drop_ratio_error:
        return ERROR, f"miss ratio {r['miss_ratio']:.2f}, drop ratio {r['drop_ratio']:.2f}"
    if r["miss_ratio"] >= s.miss_ratio_warn or r["drop_ratio"] >= s.drop_ratio_warn:
        return WARN, f"miss ratio {r['miss_ratio']:.2f}, drop ratio {r['drop_ratio']:.2f}"
    return OK, f"{r['processed_hz']:.1f} Hz processed"


def _kv(pairs: dict) -> list[KeyValue]:
    out = []
    for k, v in pairs.items():
        if isinstance(v, float):
            v = f"{v:.3f}"
        elif v is None:
            v = "n/a"
        out.append(KeyValue(key=str(k), value=str(v)))
    return out


def camera_status(node_name: str, hardware_id: str, cam: CameraStats, prev: Snapshot,
                  cur: Snapshot, now: float, s: Settings) -> DiagnosticStatus:
    r = rates(prev, cur)
    with cam.lock:
        silent = None if cam.last_received is None else now - cam.last_received
        lat = list(cam.latency_ms)
        usage = dict(cam.member_usage)
        reasons = dict(cam.malformed_reasons)
    level, message = level_for(r, silent, s)
    values = {
        "topic": cam.topic,
        "input_rate_hz": r["input_hz"], "processed_rate_hz": r["processed_hz"],
        "miss_ratio": r["miss_ratio"], "drop_ratio": r["drop_ratio"],
        "received": cur.received, "processed": cur.processed,
        "deadline_misses": cur.misses, "dropped_stale": cur.dropped_stale,
        "malformed": cur.malformed, "skipped": cur.skipped, "errors": cur.errors,
        "latency_ms_p50": percentile(lat, 50), "latency_ms_p95": percentile(lat, 95),
        "member_usage": ", ".join(f"{k}={v}" for k, v in sorted(usage.items())) or "none",
    }
    values.update({f"malformed_{k}": v for k, v in sorted(reasons.items())})
    return DiagnosticStatus(level=level, name=f"{node_name}: camera {cam.topic}",
                            message=message, hardware_id=hardware_id, values=_kv(values))


def engine_status(node_name: str, hardware_id: str, bank_info: dict, s: Settings,
                  active: bool) -> DiagnosticStatus:
    level = OK if active and bank_info.get("path") else WARN
    message = "processing" if active else "inactive"
    if not bank_info.get("path"):
        message = "no bank loaded"
    values = {"bank": bank_info.get("path") or "none", "bank_name": bank_info.get("name"),
              "task": bank_info.get("task"), "backend": bank_info.get("backend"),
              "members": bank_info.get("members"),
              "deadline_ms": s.deadline_ms, "margin_ms": s.margin_ms,
              "latency_quantile": s.latency_quantile, "on_no_fit": s.on_no_fit,
              "threads": s.threads, "sense_cpu_load": s.sense_cpu_load,
              "roi": list(s.roi) or "full frame",
              "last_bank_error": bank_info.get("error")}
    return DiagnosticStatus(level=level, name=f"{node_name}: engine", message=message,
                            hardware_id=hardware_id, values=_kv(values))


def build_array(stamp, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = statuses
    return msg


def period_statuses(node_name: str, hardware_id: str, bank_info: dict, s: Settings,
                    active: bool, cameras: dict, prev: dict, now: float) -> list:
    """The engine's status, then each camera's over the period since ``prev`` ({camera:
    Snapshot}, advanced to ``now`` in place)."""
    statuses = [engine_status(node_name, hardware_id, bank_info, s, active)]
    for camera, st in cameras.items():
        cur = st.snapshot(now)
        statuses.append(camera_status(node_name, hardware_id, st, prev[camera], cur, now, s))
        prev[camera] = cur
    return statuses
