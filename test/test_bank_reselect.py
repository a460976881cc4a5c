"""Frontier-only members and re-selection of the served set on this machine's profile.

Banks here are made from the quick bank's one member: its weights copied under several names
(same architecture), with hand-set latencies and accuracies in the manifest, so which member
is dominated is known exactly; ``bank profile`` runs with a deterministic fake profiler.
"""
import json
import random
import shutil

import pytest

from vip_perception.bank import BankError, LatencyProfile, load_bank
from vip_perception.bank.manifest import file_entry, is_served, read_manifest, write_manifest
from vip_perception.bank.pareto import Point, dominates, eps_dominates, pareto_front
from vip_perception.bank.profile import reselect
from vip_perception.cli import main as cli

# name: (p50 ms at 1 thread, val accuracy, served); epsilon 0.01: c is ε-covered by b
MEMBERS = {"a": (1.0, 0.80, True), "b": (2.0, 0.85, True), "c": (3.0, 0.855, False), "d": (4.0, 0.90, True)}


def _lat(ms: float) -> dict:
    return {"1": LatencyProfile(ms, ms, ms, ms, 10).to_dict()}


def parent_member(manifest: dict) -> dict:
    """The quick bank's parent (not a ViP variant, whose weights hold a ViP-wrapped layer): which
    member the quick bank lists first depends on this machine's profile."""
    return next(m for m in manifest["members"] if m.get("kind") != "vip")


def make_bank(quick_bank, dst, members=MEMBERS, served_flags=True):
    """A bank at ``dst`` whose members share the quick bank's architecture and weights."""
    src = json.loads((quick_bank / "manifest.json").read_text())
    proto = parent_member(src)
    dst.mkdir()
    manifest = {k: v for k, v in src.items() if k not in ("members", "files")}
    manifest["selection"] = {"threads": 1, "quantile": "p50", "epsilon": 0.01, "keep_best": True,
                             "frontier": list(members), "compact": [n for n, v in members.items() if v[2]]}
    manifest["members"], manifest["files"] = [], {}
    for name, (ms, acc, served) in members.items():
        shutil.copyfile(quick_bank / proto["file"], dst / f"{name}.safetensors")
        manifest["files"][f"{name}.safetensors"] = file_entry(str(dst / f"{name}.safetensors"))
        m = {**proto, "name": name, "file": f"{name}.safetensors", "val_accuracy": acc, "latency": _lat(ms)}
        m.pop("served", None)
        if served_flags:
            m["served"] = served
        manifest["members"].append(m)
    write_manifest(str(dst), manifest)
    return dst


@pytest.fixture
def qb(quick_bank):
    from pathlib import Path

    return Path(quick_bank)


def _fake_profiler(latency_ms: dict):
    def profile(models, input_shape, threads, *args, **kwargs):
        return {n: {t: LatencyProfile(latency_ms[n], latency_ms[n], latency_ms[n], latency_ms[n], 5) for t in threads}
                for n in models}
    return profile


def _monotonic(bank) -> None:
    lat = [m.quantile_ms(1, "p50") for m in bank.members]
    acc = [m.val_accuracy for m in bank.members]
    assert all(x < y for x, y in zip(lat, lat[1:])) and all(x < y for x, y in zip(acc, acc[1:])), (lat, acc)


def test_load_serves_only_served_members_and_frontier_loads_all(qb, tmp_path):
    bank = load_bank(str(make_bank(qb, tmp_path / "bank")))
    assert [m.name for m in bank.members] == ["a", "b", "d"] and all(m.served for m in bank.members)
    full = load_bank(str(tmp_path / "bank"), frontier=True)
    assert [(m.name, m.served) for m in full.members] == [("a", True), ("b", True), ("c", False), ("d", True)]


def test_old_format_manifest_serves_every_member(qb, tmp_path):
    d = make_bank(qb, tmp_path / "old", served_flags=False)
    data = read_manifest(str(d))
    assert all("served" not in m for m in data["members"]) and all(is_served(m) for m in data["members"])
    assert [m.name for m in load_bank(str(d)).members] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("bank", ["fashion_mnist", "conveyor_detector"])
def test_shipped_manifests_serve_every_member(bank):
    from vip_perception.bank.provenance import _REPO

    data = read_manifest(str(_REPO / "config" / "banks" / bank))
    assert data["members"] and all(is_served(m) for m in data["members"])


def test_no_served_member_is_an_error(qb, tmp_path):
    d = make_bank(qb, tmp_path / "bank", {"a": (1.0, 0.8, False)})
    with pytest.raises(BankError, match="no member is served"):
        load_bank(str(d))


def test_profile_drops_a_dominated_member_and_promotes_a_frontier_one(qb, tmp_path, monkeypatch, capsys):
    """b became slower than c here: b is dominated by c, so c is served and b is not."""
    d = make_bank(qb, tmp_path / "bank")
    monkeypatch.setattr("vip_perception.bank.profile.profile_models",
                        _fake_profiler({"a": 1.0, "b": 3.5, "c": 3.0, "d": 4.0}))
    assert cli(["bank", "profile", str(d), "--threads", "1", "--runs", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "c served (was frontier-only)" in out and "b frontier-only (was served)" in out
    data = read_manifest(str(d))
    assert {m["name"]: m["served"] for m in data["members"]} == {"a": True, "b": False, "c": True, "d": True}
    r = data["selection"]["reselected"]
    assert (r["promoted"], r["dropped"], r["served"]) == (["c"], ["b"], ["a", "c", "d"])
    assert data["selection"]["compact"] == ["a", "c", "d"] and r["threads"] == 1 and r["quantile"] == "p50"
    bank = load_bank(str(d))
    assert [m.name for m in bank.members] == ["a", "c", "d"]
    _monotonic(bank)
    assert len(load_bank(str(d), frontier=True).members) == 4  # b's weights stay for a later profile


@pytest.mark.parametrize("b_ms, c_ms", [(2.9, 3.0), (3.0, 2.9)])
def test_two_profiles_that_swap_near_equal_members_serve_the_same_set(qb, tmp_path, monkeypatch, b_ms, c_ms):
    """selection.latency_tie 0.05: b and c within 4% of each other in either order -> c (more
    accurate) is served both times; without the tie the first profile would serve b as well."""
    d = make_bank(qb, tmp_path / "bank", {"a": (1.0, 0.80, True), "b": (2.0, 0.85, True),
                                          "c": (3.0, 0.86, False), "d": (4.0, 0.90, True)})
    data = read_manifest(str(d))
    data["selection"].update(epsilon=0.0, latency_tie=0.05)
    write_manifest(str(d), data)
    monkeypatch.setattr("vip_perception.bank.profile.profile_models",
                        _fake_profiler({"a": 1.0, "b": b_ms, "c": c_ms, "d": 4.0}))
    assert cli(["bank", "profile", str(d), "--threads", "1", "--runs", "5", "--no-progress"]) == 0
    r = read_manifest(str(d))["selection"]["reselected"]
    assert r["served"] == ["a", "c", "d"] and r["latency_tie"] == 0.05
    _monotonic(load_bank(str(d)))


def test_profile_of_an_old_format_bank_makes_it_monotonic(qb, tmp_path, monkeypatch, capsys):
    d = make_bank(qb, tmp_path / "old", served_flags=False)
    monkeypatch.setattr("vip_perception.bank.profile.profile_models",
                        _fake_profiler({"a": 1.0, "b": 2.0, "c": 1.5, "d": 4.0}))  # b now dominated by c
    assert cli(["bank", "profile", str(d), "--threads", "1", "--runs", "5", "--no-progress"]) == 0
    assert "b frontier-only (was served)" in capsys.readouterr().out
    bank = load_bank(str(d))
    assert [m.name for m in bank.members] == ["a", "c", "d"]
    _monotonic(bank)


def test_show_flags_a_dominated_served_member(qb, tmp_path, capsys):
    d = make_bank(qb, tmp_path / "old", {"a": (1.0, 0.80, True), "b": (3.5, 0.85, True), "c": (3.0, 0.855, True),
                                         "d": (4.0, 0.90, False)})
    jpath = tmp_path / "show.json"
    assert cli(["bank", "show", str(d), "--json", str(jpath)]) == 0
    out = capsys.readouterr().out
    assert "DOMINATED by c" in out and "warning: served member(s) b dominated" in out
    assert "frontier-only" in out
    report = json.loads(jpath.read_text())
    assert report["dominated"] == ["b"]
    assert {m["name"]: m["dominated_by"] for m in report["members"]} == {"a": None, "b": "c", "c": None}
    assert [m["name"] for m in report["frontier_only"]] == ["d"]


def test_show_flags_nothing_on_a_monotonic_bank(qb, tmp_path, capsys):
    d = make_bank(qb, tmp_path / "bank")
    jpath = tmp_path / "show.json"
    assert cli(["bank", "show", str(d), "--json", str(jpath)]) == 0
    assert "DOMINATED" not in capsys.readouterr().out and json.loads(jpath.read_text())["dominated"] == []


@pytest.mark.parametrize("seed", range(20))
def test_reselect_is_monotonic_and_an_eps_cover(seed):
    """On random profiles the re-selected served set rises in latency and accuracy together,
    is on the front, and ε-covers every front point."""
    rng = random.Random(seed)
    eps = rng.choice([0.0, 0.005, 0.02])
    members = [{"name": f"m{i}", "val_accuracy": round(rng.uniform(0.7, 0.95), 3),
                "latency": _lat(round(rng.uniform(0.5, 20.0), 2)), "served": rng.random() < 0.5}
               for i in range(rng.randint(1, 12))]
    manifest = {"selection": {"threads": 1, "quantile": "p50", "epsilon": eps, "keep_best": True},
                "members": members}
    r = reselect(manifest, "torch", 1)
    pts = {m["name"]: Point(m["latency"]["1"]["p50"], m["val_accuracy"]) for m in members}
    served = [pts[n] for n in r["served"]]
    assert served and all(a.latency < b.latency and a.accuracy < b.accuracy for a, b in zip(served, served[1:]))
    assert not any(dominates(p, s) for p in pts.values() for s in served)
    front = [list(pts.values())[i] for i in pareto_front(list(pts.values()))]
    assert all(any(eps_dominates(s, f, eps) for s in served) for f in front)
    assert served[-1].accuracy == max(p.accuracy for p in pts.values())  # keep_best
    assert {m["name"] for m in members if m["served"]} == set(r["served"]) == set(manifest["selection"]["compact"])


def test_reselect_names_a_member_without_the_profile():
    manifest = {"selection": {"threads": 2, "quantile": "p50", "epsilon": 0.0},
                "members": [{"name": "x", "val_accuracy": 0.9, "latency": _lat(1.0)}]}
    with pytest.raises(BankError, match="member x: no torch latency profile at 2 threads"):
        reselect(manifest)


def test_classifier_build_ships_the_frontier_and_serves_the_compact_set(qb, tmp_path):
    from vip_perception.bank.build_classifier import write_bank
    from vip_perception.bank.recipe import ClassifierRecipe, load_recipe
    from vip_perception.bank.records import CandidateRecord
    from vip_perception.commands.bank_build import default_config_path

    src = json.loads((qb / "manifest.json").read_text())
    proto = parent_member(src)
    cfg = load_recipe(default_config_path(), ClassifierRecipe, quick=True)
    cfg.select.threads, cfg.select.quantile, cfg.select.epsilon, cfg.select.min_accuracy = 1, "p50", 0.01, 0.0

    def rec(name, ms, acc):
        return CandidateRecord(name=name, kind="base", spec=proto["spec"], val_accuracy=acc, test_accuracy=acc,
                               macs=proto["macs"], param_bytes=proto["param_bytes"],
                               latency={1: LatencyProfile(ms, ms, ms, ms, 10)})

    recs = [rec(n, ms, acc) for n, (ms, acc, _) in MEMBERS.items()] + [rec("slow", 5.0, 0.85)]  # slow: dominated
    out = tmp_path / "built"
    manifest = write_bank(str(out), recs, cfg, src["class_names"], src["machine"],
                          weights_of=lambda r: str(qb / proto["file"]), build={})
    assert [(m["name"], m["served"]) for m in manifest["members"]] == [
        ("a", True), ("b", True), ("c", False), ("d", True)]
    assert sorted(p.name for p in out.glob("*.safetensors")) == [f"{n}.safetensors" for n in "abcd"]
    assert [m.name for m in load_bank(str(out)).members] == ["a", "b", "d"]


@pytest.mark.parametrize("v_ms, served", [(3.5, False), (2.5, True)])
def test_profile_serves_a_vip_member_only_when_it_pays(qb, tmp_path, monkeypatch, capsys, v_ms, served):
    """selection.vip_min_speedup 1.3: v (ViP of d, 4.0 ms) at 3.5 ms is 1.14x -> not served even
    though it is on the front; at 2.5 ms (1.6x) it is."""
    members = {"a": (1.0, 0.80, True), "b": (2.0, 0.85, True), "v": (3.0, 0.88, True), "d": (4.0, 0.90, True)}
    d = make_bank(qb, tmp_path / "bank", members)
    data = read_manifest(str(d))
    data["selection"]["vip_min_speedup"] = 1.3
    for m in data["members"]:
        if m["name"] == "v":
            m["kind"], m["parent"] = "vip", "d"
    write_manifest(str(d), data)
    monkeypatch.setattr("vip_perception.bank.profile.profile_models",
                        _fake_profiler({"a": 1.0, "b": 2.0, "v": v_ms, "d": 4.0}))
    assert cli(["bank", "profile", str(d), "--threads", "1", "--runs", "5", "--no-progress"]) == 0
    data = read_manifest(str(d))
    assert {m["name"]: m["served"] for m in data["members"]}["v"] is served
    assert data["selection"]["reselected"]["vip_unpaid"] == ([] if served else ["v"])
    assert [m.name for m in load_bank(str(d)).members] == (["a", "b", "v", "d"] if served else ["a", "b", "d"])


def _fake_profiler_per_threads(latency_ms: dict):
    """Like ``_fake_profiler``, with {name: {threads: ms}}."""
    def profile(models, input_shape, threads, *args, **kwargs):
        return {n: {t: LatencyProfile(*[latency_ms[n][t]] * 4, 5) for t in threads} for n in models}
    return profile


# the AVX2-only host's station profile (benchmarks/bank_station_avx2.json, p50 ms at 1 / 2 threads):
# vgg_xl.vip01 pays 1.47x at 1 thread and 1.27x at 2, so the old all-counts rule dropped it
AVX2 = {"vgg_t": {1: 2.82, 2: 2.59}, "vgg_m": {1: 9.14, 2: 7.73}, "vgg_xl.vip01": {1: 18.60, 2: 13.99},
        "vgg_xl": {1: 27.39, 2: 17.78}}


def test_profile_serves_a_vip_member_at_the_thread_counts_where_it_pays(qb, tmp_path, monkeypatch, capsys):
    from vip_perception.bank.show import summarise, table

    members = {"vgg_t": (1.0, 0.882, True), "vgg_m": (2.0, 0.907, True), "vgg_xl.vip01": (3.0, 0.926, True),
               "vgg_xl": (4.0, 0.933, True)}
    d = make_bank(qb, tmp_path / "bank", members)
    data = read_manifest(str(d))
    data["selection"].update(vip_min_speedup=1.3, epsilon=0.003)
    for m in data["members"]:
        if m["name"] == "vgg_xl.vip01":
            m["kind"], m["parent"] = "vip", "vgg_xl"
    write_manifest(str(d), data)
    monkeypatch.setattr("vip_perception.bank.profile.profile_models", _fake_profiler_per_threads(AVX2))
    assert cli(["bank", "profile", str(d), "--threads", "1,2", "--runs", "5", "--no-progress"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("vgg_xl.vip01"))
    assert "p50  18.600" in line and line.endswith("served at 1 thread(s) only (its ViP pays there)"), line
    data = read_manifest(str(d))
    r = data["selection"]["reselected"]
    assert r["served"] == ["vgg_t", "vgg_m", "vgg_xl.vip01", "vgg_xl"] and r["vip_unpaid"] == []
    assert r["served_threads"] == {"vgg_xl.vip01": [1]}
    assert {m["name"]: m.get("served_threads") for m in data["members"]} == {
        "vgg_t": None, "vgg_m": None, "vgg_xl.vip01": [1], "vgg_xl": None}
    bank = load_bank(str(d))  # the selector and calibration see only the options it pays at
    options = {m.name: (sorted(m.latency), sorted(m.runners)) for m in bank.members}
    assert options["vgg_xl.vip01"] == ([1], [1]) and options["vgg_xl"] == ([1, 2], [1, 2])
    full = load_bank(str(d), frontier=True)  # measured again at every count by the next profile
    assert sorted(next(m for m in full.members if m.name == "vgg_xl.vip01").latency) == [1, 2]
    shown = {x.split()[0]: x for x in table(summarise(data, [], 1)["members"]).splitlines()[2:]}
    assert shown["vgg_xl.vip01"].endswith("served at 1 thread(s) only") and "only" not in shown["vgg_xl"]
    # a later profile where it pays at both counts serves it at both again
    monkeypatch.setattr("vip_perception.bank.profile.profile_models", _fake_profiler_per_threads(
        {**AVX2, "vgg_xl.vip01": {1: 18.6, 2: 12.0}}))
    assert cli(["bank", "profile", str(d), "--threads", "1,2", "--runs", "5", "--no-progress"]) == 0
    data = read_manifest(str(d))
    assert data["selection"]["reselected"]["served_threads"] == {}
    assert all("served_threads" not in m for m in data["members"])


def test_served_threads_without_a_profiled_count_fails_with_the_member(qb, tmp_path):
    d = make_bank(qb, tmp_path / "bank")
    data = read_manifest(str(d))
    data["members"][1]["served_threads"] = [4]
    write_manifest(str(d), data)
    with pytest.raises(BankError, match=r"member b: served_threads \[4\] names no profiled thread count"):
        load_bank(str(d))
    assert len(load_bank(str(d), frontier=True).members) == 4
    data["members"][1]["served_threads"] = []
    with pytest.raises(BankError, match="served_threads"):
        write_manifest(str(d), data)


def test_unpaid_vip_rule():
    from vip_perception.bank.pareto import unpaid_vip

    names, parents = ["p", "v1", "v2", "orphan"], [None, "p", "p", "gone"]
    latency = [{1: 10.0, 2: 6.0}, {1: 7.0, 2: 4.0}, {1: 7.0, 2: 5.0}, {1: 1.0}]
    assert unpaid_vip(names, parents, latency, 1.3) == {2}  # v2 pays at 1 thread, not at 2 (1.2x)
    assert unpaid_vip(names, parents, latency, 1.0) == set()  # the rule off
    assert unpaid_vip(names, parents, latency, 1.5) == {1, 2}
    accuracy = [0.93, 0.925, 0.915, 0.50]  # v1 0.5 point below p, v2 1.5 points
    assert unpaid_vip(names, parents, latency, 1.0, accuracy, 0.01) == {2}  # more than 1 point lost
    assert unpaid_vip(names, parents, latency, 1.0, accuracy, 0.02) == set()
    assert unpaid_vip(names, parents, latency, 1.0, accuracy, 0.005) == {2}  # exactly 0.5 point is allowed
    assert unpaid_vip(names, parents, latency, 1.0, accuracy, 1.0) == set()  # the rule off
    assert unpaid_vip(names, parents, latency, 1.3, accuracy, 0.01) == {2}  # both rules: either one excludes


def test_a_vip_variant_pays_per_thread_count():
    """v2 pays 1.43x at 1 thread and 1.2x at 2: selected at 1 thread it is eligible and served
    there only; selected at 2 it is not eligible. The accuracy rule ignores thread counts."""
    from vip_perception.bank.pareto import served_threads, unpaid_vip, vip_unpaid_threads

    names, parents = ["p", "v1", "v2", "orphan"], [None, "p", "p", "gone"]
    latency = [{1: 10.0, 2: 6.0}, {1: 7.0, 2: 4.0}, {1: 7.0, 2: 5.0}, {1: 1.0}]
    assert vip_unpaid_threads(names, parents, latency, 1.3) == {2: [2]}
    assert vip_unpaid_threads(names, parents, latency, 1.5) == {1: [1], 2: [1, 2]}  # 6.0 / 4.0 is exactly 1.5
    assert vip_unpaid_threads(names, parents, latency, 1.0) == {}
    assert unpaid_vip(names, parents, latency, 1.3, at_threads=1) == set()
    assert unpaid_vip(names, parents, latency, 1.3, at_threads=2) == {2}
    assert unpaid_vip(names, parents, latency, 1.5, at_threads=2) == {2}
    accuracy = [0.93, 0.925, 0.915, 0.50]
    assert unpaid_vip(names, parents, latency, 1.3, accuracy, 0.01, at_threads=1) == {2}  # 1.5 points lost
    short = vip_unpaid_threads(names, parents, latency, 1.3)
    assert served_threads(latency, short, {0, 1, 2}) == {2: [1]}
    assert served_threads(latency, short, {0, 1}) == {}  # v2 not chosen: nothing to restrict


def test_build_selection_leaves_out_a_vip_variant_that_loses_too_much():
    from vip_perception.bank.build_classifier import selection
    from vip_perception.bank.records import CandidateRecord, LatencyProfile

    def rec(name, ms, acc, parent=None):
        return CandidateRecord(name=name, kind="vip" if parent else "parent", spec={}, vip_layers=[], parent=parent,
                               val_accuracy=acc, test_accuracy=acc, macs=1, param_bytes=1, train={},
                               latency={1: LatencyProfile(ms, ms, ms, ms, 10)})

    recs = [rec("small", 1.0, 0.88), rec("p", 10.0, 0.933), rec("v_close", 7.0, 0.926, "p"),
            rec("v_far", 3.5, 0.916, "p")]
    sel = selection(recs, 1, "p95", 0.0, True, 0.8, vip_min_speedup=1.3, vip_max_val_drop=0.01)
    assert sel["frontier"] == ["small", "v_close", "p"] and sel["vip_max_val_drop"] == 0.01
    sel = selection(recs, 1, "p95", 0.0, True, 0.8, vip_min_speedup=1.3)  # no accuracy rule
    assert "v_far" in sel["frontier"]


def test_build_selection_serves_a_vip_variant_where_it_pays():
    """v pays 1.43x at 1 thread, 1.2x at 2: selected at 1 thread it is served there only; at 2
    threads it is not eligible."""
    from vip_perception.bank.build_classifier import selection
    from vip_perception.bank.records import CandidateRecord, LatencyProfile

    def rec(name, ms, acc, parent=None):
        return CandidateRecord(name=name, kind="vip" if parent else "parent", spec={}, vip_layers=[], parent=parent,
                               val_accuracy=acc, test_accuracy=acc, macs=1, param_bytes=1, train={},
                               latency={t: LatencyProfile(*[v] * 4, 10) for t, v in ms.items()})

    recs = [rec("small", {1: 1.0, 2: 0.8}, 0.88), rec("p", {1: 10.0, 2: 6.0}, 0.933),
            rec("v", {1: 7.0, 2: 5.0}, 0.926, "p")]
    sel = selection(recs, 1, "p95", 0.0, True, 0.8, vip_min_speedup=1.3)
    assert sel["compact"] == ["small", "v", "p"] and sel["served_threads"] == {"v": [1]}
    sel = selection(recs, 2, "p95", 0.0, True, 0.8, vip_min_speedup=1.3)
    assert sel["compact"] == ["small", "p"] and sel["served_threads"] == {}
