"""A bank's members and candidates as plain data, a text table and a trade-off plot
(the library behind ``vip-perception bank show``).

The plot puts every profiled candidate in (latency, validation accuracy) space with the Pareto
front and the compact ε-Pareto members, ViP variants marked, so the trade-off is visible at a
glance; the JSON carries the same numbers plus the hypervolume with and without ViP.
"""
from __future__ import annotations

import os

from .manifest import is_served
from .pareto import Point, dominates

FIELDS = ("name", "kind", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "val_accuracy", "test_accuracy",
          "vip_layers", "parent", "macs", "param_bytes")


def _row(d: dict, threads: int) -> dict:
    """A member or candidate record -> one report row at ``threads`` (latencies in ms; an
    imported ONNX member's are its onnxruntime profile, the only one it has)."""
    profile = d["latency"] or d.get("backend_latency", {}).get("onnxruntime", {})
    lat = profile.get(str(threads)) or {}
    row = {"name": d["name"], "kind": d["kind"],
           "latency_ms_p50": lat.get("p50"), "latency_ms_p95": lat.get("p95"), "latency_ms_p99": lat.get("p99"),
           "val_accuracy": d["val_accuracy"], "test_accuracy": d["test_accuracy"], "vip_layers": d["vip_layers"],
           "parent": d["parent"], "macs": d["macs"], "param_bytes": d["param_bytes"],
           "train_seconds": _train_seconds(d.get("train") or {}),
           "latency_ms": {t: p for t, p in sorted(profile.items(), key=lambda kv: int(kv[0]))},
           "served_threads": d.get("served_threads")}  # None: every profiled count
    return row


def _train_seconds(train: dict) -> float | None:
    """Wall-clock seconds a candidate's training took, refine stages included (None: unknown)."""
    if "seconds" not in train:
        return None
    refine = train.get("refine") or []
    stages = refine if isinstance(refine, list) else [refine]
    return float(train["seconds"]) + sum(float(st.get("seconds", 0.0)) for st in stages)


def flag_dominated(rows: list[dict], quantile: str) -> list[dict]:
    """Set each row's ``dominated_by``: the name of another row that Pareto-dominates it in
    (``latency_ms_<quantile>``, ``val_accuracy``) (no slower, at least as accurate, strictly
    better in one), else None; rows without that latency are never flagged. Returns ``rows``.

    On served members this is the monotonicity check: a served member dominated on this
    machine's profile can never be the right choice (``bank profile`` re-selects it away)."""
    key = f"latency_ms_{quantile}"
    pts = [Point(r[key], r["val_accuracy"]) if r[key] is not None else None for r in rows]
    for r, p in zip(rows, pts):
        r["dominated_by"] = next((o["name"] for o, op in zip(rows, pts)
                                  if o is not r and p is not None and op is not None and dominates(op, p)), None)
    return rows


def add_vip_speedups(rows: list[dict], reference: list[dict]) -> list[dict]:
    """Set each row's ``speedup_vs_parent``: {threads: parent p50 / row p50} for a ViP variant
    whose parent is in ``reference`` (rows of the same profile: members first, then build
    candidates), else None. Returns ``rows``."""
    by_name: dict[str, dict] = {}
    for r in reference:
        by_name.setdefault(r["name"], r)
    for r in rows:
        parent = by_name.get(r["parent"]) if r["kind"] == "vip" and r["parent"] else None
        if parent is None:
            r["speedup_vs_parent"] = None
            continue
        r["speedup_vs_parent"] = {t: parent["latency_ms"][t]["p50"] / p["p50"]
                                  for t, p in r["latency_ms"].items() if t in parent["latency_ms"] and p["p50"]}
    return rows


def summarise(manifest: dict, candidates: list[dict], threads: int) -> dict:
    """Everything `bank show` reports, as plain data.

    ``members`` are the served members, each with ``dominated_by`` (another served member that
    Pareto-dominates it at ``threads`` and the selection's quantile, else None);
    ``frontier_only`` the members whose weights ship but are not served; ``dominated`` the
    names of flagged served members."""
    q = manifest["selection"]["quantile"]
    members = flag_dominated([_row(m, threads) for m in manifest["members"] if is_served(m)], q)
    frontier_only = [_row(m, threads) for m in manifest["members"] if not is_served(m)]
    cands = [_row(c, threads) for c in candidates]
    add_vip_speedups(cands, cands)  # the build's profile, one machine and one pass for all
    add_vip_speedups(members + frontier_only, members + frontier_only)  # the manifest's profile
    build = {c["name"]: c for c in cands}
    for r in members + frontier_only:  # parent not shipped: the build profile's figure, said so
        if r["speedup_vs_parent"] is None and r["kind"] == "vip" and r["name"] in build:
            r["speedup_vs_parent"] = build[r["name"]]["speedup_vs_parent"]
            r["speedup_profile"] = "build"
    p50 = [m["latency_ms_p50"] for m in members if m["latency_ms_p50"]]
    sel = manifest["selection"]
    return {
        "bank": manifest["name"], "task": manifest["task"], "threads": threads, "machine": manifest["machine"],
        "input": manifest["input"], "class_names": manifest["class_names"],
        "selection": {k: v for k, v in sel.items() if k not in ("frontier", "compact")},
        "frontier": sel["frontier"], "compact": [m["name"] for m in members],
        "summary": {
            "candidates": len(cands), "vip_candidates": sum(1 for c in cands if c["kind"] == "vip"),
            "profiled_candidates": sum(1 for c in cands if c["latency_ms_p95"] is not None),
            "members": len(members), "vip_members": sum(1 for m in members if m["vip_layers"]),
            "member_p50_span": (max(p50) / min(p50)) if p50 else None,
            "best_member_test_accuracy": max((m["test_accuracy"] for m in members), default=None),
            "best_candidate_test_accuracy": max((c["test_accuracy"] for c in cands), default=None),
            "slowest_member_p95_ms": max((m["latency_ms_p95"] or 0 for m in members), default=None),
        },
        "members": members, "frontier_only": frontier_only,
        "dominated": [m["name"] for m in members if m["dominated_by"]], "candidates": cands,
    }


def table(rows: list[dict]) -> str:
    """Report rows as a fixed-width text table (one line per row); a row with ``dominated_by``
    set ends in ``DOMINATED by NAME``, one with ``served_threads`` in ``served at N thread(s)
    only``."""
    head = (f"{'name':<16} {'kind':<6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'val':>6} {'test':>6} "
            f"{'MMACs':>7} {'kB':>6}  vip layers")
    lines = [head, "-" * len(head)]
    for r in rows:
        lat = " ".join(f"{v:7.3f}" if v is not None else "      -"
                       for v in (r["latency_ms_p50"], r["latency_ms_p95"], r["latency_ms_p99"]))
        lines.append(f"{r['name']:<16} {r['kind']:<6} {lat} "
                     f"{r['val_accuracy']:6.4f} {r['test_accuracy']:6.4f} {r['macs'] / 1e6:7.2f} "
                     f"{r['param_bytes'] / 1024:6.0f}  "
                     f"{len(r['vip_layers'])}" + (f" ({r['parent']})" if r["parent"] else "")
                     + (f"  DOMINATED by {r['dominated_by']}" if r.get("dominated_by") else "")
                     + (f"  served at {','.join(map(str, r['served_threads']))} thread(s) only"
                        if r.get("served_threads") else ""))
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    """The (latency, val accuracy) trade-off of ``summarise``'s report as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = report["selection"].get("quantile", "p95")
    key = f"latency_ms_{q}"
    cands = [c for c in report["candidates"] if c[key] is not None]
    fig, ax = plt.subplots(figsize=(9, 6))
    styles = {"base": ("o", "#9e9e9e", "base candidates"), "parent": ("s", "#1f77b4", "parents"),
              "vip": ("^", "#ff7f0e", "ViP variants")}
    for kind, (marker, color, label) in styles.items():
        pts = [c for c in cands if c["kind"] == kind]
        if pts:
            ax.scatter([c[key] for c in pts], [c["val_accuracy"] for c in pts], marker=marker, c=color, s=22,
                       alpha=0.75, label=f"{label} ({len(pts)})")
    by = {c["name"]: c for c in cands}
    front = [by[n] for n in report["frontier"] if n in by]
    ax.step([c[key] for c in front], [c["val_accuracy"] for c in front], where="post", color="k", lw=1,
            label="Pareto front")
    members = report["members"]
    ax.scatter([m[key] for m in members], [m["val_accuracy"] for m in members], s=140, facecolors="none",
               edgecolors="#d62728", linewidths=1.8, label=f"compact ε-Pareto set ({len(members)})")
    for m in members:
        ax.annotate(m["name"], (m[key], m["val_accuracy"]), textcoords="offset points", xytext=(5, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"latency {q} at batch 1, {report['threads']} threads (ms, log)")
    ax.set_ylabel("validation accuracy")
    accs = sorted(c["val_accuracy"] for c in cands)
    if accs:
        ax.set_ylim(max(0.0, accs[len(accs) // 10] - 0.05), min(1.0, accs[-1] + 0.01))
    hv = report["selection"].get("hypervolume", {})
    title = f"bank {report['bank']}: {len(cands)} candidates on {report['machine'].get('cpu', '?')}"
    if hv.get("without_vip"):
        title += f"\nhypervolume with ViP {hv['with_vip']:.3f} vs without {hv['without_vip']:.3f}"
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
