"""Batch-1 latency profiling, interleaved across candidates so machine noise is shared, and the
re-profiling of a built bank on the machine it will run on.

Latencies belong to the machine, so profiling is its own step (re-run with ``bank profile``).
Runs are split into rounds; each round visits every thread count and every candidate (in a
seeded shuffled order), so a burst of background load hits all candidates alike instead of
whichever one happened to be measured at that moment.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import random
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn
from tqdm import tqdm

from ..backends.torch_backend import TorchRunner
from ..machine import machine_info
from ..quantiles import percentiles
from .bank import backend_runners, imported_runners, is_imported_bank, load_bank, load_weights, require_backend
from .manifest import file_entry, is_served, write_manifest
from .pareto import Point, eps_pareto, pareto_front, served_threads, unpaid_vip, vip_unpaid_threads
from .records import BankError, LatencyProfile

__all__ = ["member_profile", "profile_models", "reprofile", "reselect", "summarise"]


def summarise(samples_ms: list[float]) -> LatencyProfile:
    """p50 / p95 / p99 / mean (ms) and the count of a non-empty list of samples."""
    p = percentiles(samples_ms, (50, 95, 99))
    return LatencyProfile(p["p50"], p["p95"], p["p99"], float(sum(samples_ms) / len(samples_ms)), len(samples_ms))


def _callables(models: Mapping, threads: list[int]) -> dict[str, dict[int, Callable]]:
    """name -> thread count -> callable that owns its threads: a module runs through
    ``run_torch`` at that count, a mapping is used as given."""
    out = {}
    for name, m in models.items():
        if isinstance(m, nn.Module):
            m.eval()
            out[name] = {t: TorchRunner(m, t) for t in threads}
        else:
            out[name] = {t: m[t] for t in threads}
    return out


def profile_models(models: dict[str, nn.Module | Mapping[int, Callable]], input_shape: tuple, threads: list[int],
                   runs: int = 200, warmup: int = 20, rounds: int = 10, seed: int = 0, progress: bool = True,
                   clock: Callable[[], float] = time.perf_counter, gap_ms: float = 0.0,
                   ) -> dict[str, dict[int, LatencyProfile]]:
    """p50/p95/p99 (ms) of each eval-mode model at batch 1 for every thread count.

    A model is an ``nn.Module`` (run with ``run_torch`` at each thread count, as a bank serves
    it) or a mapping from thread count to a callable that owns its threads (an ONNX Runtime
    session per count). ``input_shape``: (1, C, H, W) of the random input. ``gap_ms`` > 0 sleeps
    that long before every timed call (the paced profile: the first inference after an idle
    gap runs on cold caches, which is what a camera stream meets); gap 0 (back to back) is
    what ranks models. ValueError for runs or rounds < 1 or a negative gap. torch's thread
    count is restored afterwards.
    """
    if runs < 1 or rounds < 1:
        raise ValueError(f"runs and rounds must be >= 1, got runs={runs}, rounds={rounds}")
    if not gap_ms >= 0:
        raise ValueError(f"gap_ms must be >= 0, got {gap_ms}")
    saved = torch.get_num_threads()
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))  # (1, C, H, W)
    fns = _callables(models, threads)
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    try:
        for t in threads:  # warm-up: allocator, oneDNN primitives, thread pool at this size
            for f in fns.values():
                for _ in range(warmup):
                    f[t](x)
        samples = _timed_rounds(fns, x, threads, per_round, random.Random(seed), clock, gap_ms / 1e3, progress)
    finally:
        torch.set_num_threads(saved)
    return {n: {t: dataclasses.replace(summarise(samples[n][t]), gap_ms=float(gap_ms)) for t in threads} for n in fns}


def _timed_rounds(fns: dict, x: torch.Tensor, threads: list[int], per_round: list[int], rng: random.Random,
                  clock: Callable[[], float], gap_s: float, progress: bool) -> dict[str, dict[int, list[float]]]:
    """The timed loop of ``profile_models``: per round, every thread count, every model in a
    shuffled order; returns the samples (ms) per model and thread count."""
    names = list(fns)
    samples = {n: {t: [] for t in threads} for n in names}
    bar = tqdm(total=len(per_round) * len(threads) * len(names), desc="profile", disable=not progress, mininterval=2.0)
    for n_runs in per_round:
        for t in threads:
            order = names[:]
            rng.shuffle(order)
            for n in order:
                f = fns[n][t]
                f(x)  # one untimed call after switching model/threads
                for _ in range(n_runs):
                    if gap_s:
                        time.sleep(gap_s)
                    t0 = clock()
                    f(x)
                    samples[n][t].append((clock() - t0) * 1e3)
                bar.update(1)
    bar.close()
    return samples


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def member_profile(member: dict, backend: str = "torch") -> dict:
    """A manifest member's latency record on ``backend`` ({"<threads>": {"p50": ms, ...}}):
    ``latency`` for torch, ``backend_latency[backend]`` otherwise ({} when not profiled)."""
    return member["latency"] if backend == "torch" else member.get("backend_latency", {}).get(backend, {})


def reselect(manifest: dict, backend: str = "torch", threads: int | None = None) -> dict:
    """Re-select the served set of ``manifest`` (in place) from all its members with weights,
    served or frontier-only, on ``backend``'s profile; returns what it did.

    The build's rule on this machine's numbers: the Pareto front of (latency, val accuracy),
    then its ε-Pareto subset (``pareto.eps_pareto``) with the manifest's ``selection.epsilon``,
    ``keep_best`` (true when absent, the detector build's rule) and ``latency_tie`` (0 when
    absent). Latency is the
    ``selection.quantile`` at ``threads`` (default ``selection.threads``, the build's reference
    count). The served set is then monotonic: latency and accuracy rise together. Members off
    the re-profiled front, or ε-covered by a faster one, become frontier-only (``served``
    false); none is deleted, so a later profile can promote it again. A rule the build added on
    top (the detector build always serves its parent) is not re-applied. Sets each member's
    ``served``, ``selection.compact`` and ``selection.reselected`` (backend, threads, quantile,
    frontier, promoted, dropped, served_threads). A ViP variant is eligible when it pays (the
    selection's ``vip_min_speedup`` over its parent) at that thread count; one that does not pay
    at another profiled count is served only where it does (the member's ``served_threads``,
    honoured by ``load_bank``). BankError naming the member when it lacks that profile.
    """
    sel = manifest["selection"]
    t, q = int(threads or sel["threads"]), sel["quantile"]
    members = manifest["members"]
    pts = []
    for m in members:
        lat = member_profile(m, backend).get(str(t))
        if lat is None:
            raise BankError(f"member {m['name']}: no {backend} latency profile at {t} threads to re-select with")
        pts.append(Point(float(lat[q]), float(m["val_accuracy"])))
    before = {m["name"] for m in members if is_served(m)}
    names = [m["name"] for m in members]
    parents = [m.get("parent") if m.get("kind") == "vip" else None for m in members]
    p50 = [{int(t): float(p["p50"]) for t, p in member_profile(m, backend).items()} for m in members]
    speedup = float(sel.get("vip_min_speedup", 1.0))
    unpaid = unpaid_vip(names, parents, p50, speedup, [float(m["val_accuracy"]) for m in members],
                        float(sel.get("vip_max_val_drop", 1.0)), at_threads=t)
    eligible = [i for i in range(len(members)) if i not in unpaid]
    chosen = {eligible[i] for i in eps_pareto([pts[i] for i in eligible], float(sel["epsilon"]),
                                              keep_best=bool(sel.get("keep_best", True)),
                                              latency_tie=float(sel.get("latency_tie", 0.0)))}
    partial = served_threads(p50, vip_unpaid_threads(names, parents, p50, speedup), chosen)
    for i, m in enumerate(members):
        m["served"] = i in chosen
        m.pop("served_threads", None)
        if i in partial:
            m["served_threads"] = partial[i]
    order = sorted(chosen, key=lambda i: (pts[i].latency, pts[i].accuracy))
    served = [members[i]["name"] for i in order]
    sel["compact"] = served
    sel["reselected"] = {
        "backend": backend, "threads": t, "quantile": q, "epsilon": sel["epsilon"],
        "latency_tie": float(sel.get("latency_tie", 0.0)),
        "frontier": [members[i]["name"] for i in pareto_front(pts)], "served": served,
        "promoted": sorted(set(served) - before), "dropped": sorted(before - set(served)),
        "vip_unpaid": sorted(members[i]["name"] for i in unpaid),
        "served_threads": {members[i]["name"]: partial[i] for i in sorted(partial)}, "at": _now(),
    }
    return sel["reselected"]


def reprofile(path: str, threads: list[int], runs: int, warmup: int, rounds: int, progress: bool = True,
              backend: str = "torch", gap_ms: float = 0.0) -> dict:
    """Re-measure every member of the bank in ``path`` with weights (served or frontier-only) on
    ``backend`` at ``threads``, re-select the served set from those numbers (``reselect``, at the
    selection's thread count when profiled, else the largest of ``threads``) and rewrite its
    manifest (atomically, re-validated); returns the new manifest, whose
    ``selection.reselected`` says which members changed status.

    torch writes each member's ``latency``, re-sorts the members and replaces the machine record;
    another backend writes ``backend_latency[backend]`` and ``machine.backend_profiles[backend]``
    and leaves the torch profile and member order alone. There is one served set, so it
    follows the backend profiled last: profile the backend the node will serve with last.
    BankError for a bank that fails to load or a backend its task does not support.
    """
    # schema and hashes first (torch: every built bank has that profile; imported ONNX members
    # have only an onnxruntime one, and load on it)
    imported = backend == "onnxruntime" and is_imported_bank(path)
    bank = load_bank(path, backend="onnxruntime" if imported else "torch", frontier=True)
    task = None if imported else require_backend(bank.task, backend, path)
    s = bank.input_spec
    models = {}
    for m in bank.members:
        if imported:  # a session per thread count from the ONNX file and its decoder
            models[m.name] = imported_runners(m.spec, os.path.join(path, m.file), threads, s.resize == "letterbox")
        elif backend == "torch":
            call = task.batch1_call(m.module)
            models[m.name] = {t: TorchRunner(call, t) for t in threads}
        else:  # sessions from the plain ViP module (exported as exact Resize)
            fpath = os.path.join(path, m.file)
            plain = load_weights(task.build_member(m.spec, m.vip_layers), fpath)
            models[m.name] = backend_runners(backend, plain, bank.manifest["input"], threads, fpath)
    prof = profile_models(models, (1, s.channels, s.height, s.width), threads,
                          runs, warmup, rounds, progress=progress, gap_ms=gap_ms)
    manifest = bank.manifest
    for m in manifest["members"]:
        record = {str(t): p.to_dict() for t, p in sorted(prof[m["name"]].items())}
        if backend == "torch":
            m["latency"] = record
        else:
            m.setdefault("backend_latency", {})[backend] = record
    ref = manifest["selection"]["threads"] if manifest["selection"]["threads"] in threads else threads[-1]
    if backend != "torch":  # the torch profile (and so the member order) stays as it was
        manifest["machine"].setdefault("backend_profiles", {})[backend] = {
            **machine_info(), "profiled_at": _now(), "gap_ms": gap_ms}
        if imported:  # its only profile: the selection's thread count follows it, as torch's does
            manifest["selection"]["threads"] = ref
    else:
        sel = manifest["selection"]
        if sel["threads"] not in threads:
            sel["threads"] = threads[-1]
        manifest["members"].sort(key=lambda m: (m["latency"][str(sel["threads"])][sel["quantile"]], m["val_accuracy"]))
        manifest["machine"] = {**manifest["machine"], **machine_info(), "profiled_at": _now(),
                               "reprofiled": True, "gap_ms": gap_ms}
        for rel in manifest["files"]:
            manifest["files"][rel] = file_entry(os.path.join(path, rel))
    reselect(manifest, backend, ref)
    write_manifest(path, manifest)
    return manifest
