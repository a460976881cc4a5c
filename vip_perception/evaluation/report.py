"""Output of the deadline evaluation: a one-screen text summary and the plot (the JSON file is
written with ``vip_perception.jsonfile.write_json``).

The plot is for a person checking adaptation at the moment load changes: over frames, the
time left and the model time (log scale, with the deadline), the chosen member and thread
count next to the oracle's, the slowdown factor per thread count, and each policy's misses,
with the load window shaded in every panel.
"""
from __future__ import annotations

import os

import numpy as np


def _cpu(s: dict) -> tuple[str, int]:
    """(cpu model, logical cores) of a scenario (older reports used "model" / "logical_cores")."""
    cpu = s["cpu"]
    return cpu.get("cpu", cpu.get("model")), cpu.get("cores", cpu.get("logical_cores"))


def summary(report: dict) -> str:
    """A few lines: the scenario, one row per policy, the best fixed option, recovery."""
    s = report["scenario"]
    fixed = s.get("deadline_fixed")
    ref = f"{s['reference_p95_ms_measured']:.3f} ms @{s['reference_threads']}t"
    lines = [
        (f"deadline {s['deadline_ms']:.3f} ms (fixed; {s['reference_member']} p95 {ref}); " if fixed else
         f"deadline {s['deadline_ms']:.3f} ms = {s['deadline_scale']} x {s['reference_member']} p95 {ref}; ")
        + f"backend {s.get('backend', 'torch')}; load {s['background_load']} "
        f"({s['load_pattern']}, frames {s['load_frames'][0]}-{s['load_frames'][1]}); {s['frames']} frames; "
        "cpu {} x{}".format(*_cpu(s)),
        f"{'policy':<28} {'miss':>6} {'acc_all':>8} {'acc_proc':>8} {'sel_p50us':>9} {'sel_p99us':>9}  usage",
    ]
    rows = list(report["policies"].items()) + [(f"({k})", v) for k, v in report.get("extra_policies", {}).items()]
    for name, p in rows:
        ap = "-" if p["accuracy_processed"] is None else f"{p['accuracy_processed']:.4f}"
        lines.append(
            f"{name:<28} {p['miss_ratio']:>6.3f} {p['accuracy_all_frames']:>8.4f} {ap:>8} "
            f"{p['selection_us_p50']:>9.2f} {p['selection_us_p99']:>9.2f}  {p['member_usage']}"
        )
    best = report.get("best_fixed_in_hindsight")
    if best:
        lines.append(f"best fixed option in hindsight: {best['policy']} acc_all {best['accuracy_all_frames']:.4f} "
                     f"miss {best['miss_ratio']:.3f}")
        lines.append(lead_line(report))
    if report.get("adaptive_recovery"):
        lines.append(f"adaptive recovery: {report['adaptive_recovery']}")
    return "\n".join(lines)


def lead_line(report: dict) -> str:
    """Accuracy over all frames in points: adaptive over the best fixed option in hindsight,
    the oracle over it, and the adaptive behind the oracle. Why the second: the oracle takes,
    per frame, the most accurate option that met the deadline, so its lead over the best fixed
    option bounds what any policy that must choose before it runs can lead that option by."""
    pol, best = report["policies"], report["best_fixed_in_hindsight"]
    a, o, b = (pol["adaptive"]["accuracy_all_frames"], pol["oracle"]["accuracy_all_frames"],
               best["accuracy_all_frames"])
    return (f"points over all frames: adaptive {100 * (a - b):+.1f} vs best fixed; oracle {100 * (o - b):+.1f} "
            f"vs best fixed (the most any policy could lead it by); adaptive {100 * (o - a):.1f} behind the oracle")


def plot(report: dict, path: str) -> None:
    """Remaining time, chosen member, slowdown factors and misses over frames; load shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, trace = report["scenario"], report["frames_trace"]
    f = np.arange(len(trace))
    fig, ax = plt.subplots(4, 1, figsize=(12, 11), sharex=True,
                           gridspec_kw={"height_ratios": [3, 2.2, 2, 1.6]})
    lo, hi = s["load_frames"]
    for k, a in enumerate(ax):
        if hi > lo:
            a.axvspan(lo - 0.5, hi - 0.5, color="tab:red", alpha=0.08, lw=0,
                      label=f"load: {s['background_load']} busy process(es)" if k == 0 else None)
    # 1: time
    rem = np.array([t["remaining_ms"] for t in trace])
    act = np.array([t["actual_ms"] for t in trace])
    pred = np.array([t["predicted_ms"] for t in trace])
    e2e = np.array([t["end_to_end_ms"] for t in trace])
    ax[0].plot(f, rem, color="tab:blue", lw=1, label="remaining at decision")
    ax[0].scatter(f, pred, s=6, color="tab:orange", label="predicted (profile x slowdown)")
    ax[0].scatter(f, act, s=6, color="tab:green", label="actual model time")
    ax[0].scatter(f, e2e, s=4, color="0.5", marker="_", label="capture to result")
    ax[0].axhline(s["deadline_ms"], color="k", ls="--", lw=1, label=f"deadline {s['deadline_ms']:.2f} ms")
    ax[0].set_yscale("log")
    ax[0].set_ylabel("ms (log)")
    ax[0].legend(loc="best", fontsize=7, ncol=3, framealpha=0.7)
    what = (f"{s['deadline_ms']:.2f} ms fixed" if s.get("deadline_fixed")
            else f"{s['deadline_scale']}x {s['reference_member']} p95")
    ax[0].set_title(f"adaptive deadline runtime: {s['bank_name']} on {s.get('backend', 'torch')}, deadline {what}, "
                    f"{s['load_pattern']} load, {_cpu(s)[0]}", fontsize=9)
    # 2: chosen member
    names = [m["name"] for m in s["members"]]
    mem = np.array([t["member"] for t in trace])
    thr = np.array([t["threads"] for t in trace])
    om = np.array([t["oracle_member"] for t in trace])
    ax[1].scatter(f, om + 0.18, s=5, color="0.7", marker="s", label="oracle")
    for t, mk, col in ((1, "o", "tab:blue"), (2, "^", "tab:purple")):
        sel = (thr == t) & (mem >= 0)
        ax[1].scatter(f[sel], mem[sel], s=9, marker=mk, color=col, label=f"adaptive, {t} thread(s)")
    others = ~np.isin(thr, (1, 2)) & (mem >= 0)
    if others.any():
        ax[1].scatter(f[others], mem[others], s=9, marker="x", color="tab:brown", label="adaptive, other threads")
    ax[1].set_yticks(range(len(names)))
    ax[1].set_yticklabels(names, fontsize=7)
    ax[1].set_ylim(-0.7, len(names) - 0.3)
    ax[1].set_ylabel("member")
    ax[1].legend(loc="best", fontsize=7, ncol=3, framealpha=0.7)
    # 3: slowdown factors
    for t in s["threads"]:
        ax[2].plot(f, [tr["slowdown"][str(t)] for tr in trace], lw=1, label=f"{t} thread(s)")
    ax[2].set_yscale("log")
    ax[2].set_ylabel("slowdown (log)")
    ax[2].legend(loc="upper right", fontsize=7)
    # 4: misses per policy
    pols = list(report["policies"])
    for k, p in enumerate(pols):
        miss = np.array([tr["misses"][p] for tr in trace])
        ax[3].scatter(f[miss], np.full(miss.sum(), k), s=8, marker="|", color="tab:red")
    ax[3].set_yticks(range(len(pols)))
    ax[3].set_yticklabels([f"{p} ({report['policies'][p]['miss_ratio']:.1%})" for p in pols], fontsize=7)
    ax[3].set_ylim(-0.7, len(pols) - 0.3)
    ax[3].set_ylabel("misses")
    ax[3].set_xlabel("frame")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
