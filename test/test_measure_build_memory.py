"""scripts/measure_build_memory.py's parts that need no build: the process-tree sampler on a
child that allocates, export limits, the data-set statistics and the record's shape."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("measure_build_memory", ROOT / "scripts" / "measure_build_memory.py")
mbm = importlib.util.module_from_spec(_spec)
sys.modules["measure_build_memory"] = mbm  # dataclasses look the module up
_spec.loader.exec_module(mbm)

ALLOC_MIB = 96
READY_TIMEOUT_S = 120  # generous: a bound for a busy or slow machine, not an expected time
# A parent that allocates nothing and a child that fills ALLOC_MIB (pages written, so resident),
# says "ready" and holds it until its stdin (the parent's, passed on) is closed.
TREE = textwrap.dedent(f"""
    import subprocess, sys
    child = "import sys; b = b'x' * ({ALLOC_MIB} << 20); print('ready', flush=True); sys.stdin.read()"
    sys.exit(subprocess.call([sys.executable, "-c", child]))
""")


def _write_pngs(folder: Path, sizes: list[tuple[int, int]]) -> None:
    import cv2

    folder.mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        assert cv2.imwrite(str(folder / f"{i}.png"), np.full((h, w), 7, np.uint8))


def test_sampler_sees_the_childs_allocation_in_the_tree_not_in_the_main_process():
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    w = mbm.Watch()
    watcher = threading.Thread(target=mbm.watch, args=(proc, 0.05, READY_TIMEOUT_S, w))
    watcher.start()
    try:
        assert proc.stdout.readline().strip() == "ready"  # the child holds its allocation from here
        seen = len(w.samples)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(w.samples) < seen + 2 and time.monotonic() < deadline:  # a full sample after "ready"
            time.sleep(0.01)
    finally:
        proc.stdin.close()  # the child lets go and both exit
        watcher.join(READY_TIMEOUT_S)
    assert w.exit_code == 0 and len(w.samples) >= seen + 2
    peak = w.peaks_mib()
    assert peak["processes_max"] == 2
    assert peak["tree_rss_mib"] >= ALLOC_MIB
    assert peak["main_rss_mib"] < ALLOC_MIB / 2  # the parent itself allocates nothing
    if peak["tree_pss_mib"] is not None:  # Linux: PSS counts the child's private pages whole
        assert peak["tree_pss_mib"] >= ALLOC_MIB
        assert peak["tree_uss_mib"] >= ALLOC_MIB
    line = w.timeline("tree_rss", points=10)
    assert 1 <= len(line) <= 10 and max(mib for _, mib in line) == pytest.approx(peak["tree_rss_mib"], abs=0.1)


def test_watch_kills_a_build_past_its_timeout():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    w = mbm.watch(proc, interval=0.05, timeout=0.3)
    assert w.exit_code is None and proc.returncode == -9  # killed, not ended by itself


def test_watch_kills_the_build_when_interrupted(monkeypatch):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)

    def interrupt(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(mbm.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        mbm.watch(proc, interval=0.05, timeout=60)
    assert proc.returncode == -9


def test_peaks_and_phases_split_the_samples_at_the_build_logs_phase_lines():
    def sample(rss):
        return {"main_rss": rss, "main_pss": None, "tree_rss": 2 * rss, "tree_pss": None, "tree_uss": None,
                "processes": 1}

    w = mbm.Watch(samples=[(0.0, sample(1 << 20)), (1.0, sample(5 << 20)), (2.5, sample(3 << 20))])
    log = "2024-05-01 10:00:01,000 INFO phase base ...\n2024-05-01 10:00:01,500 INFO phase base done in 0.1 s\n" \
          "2024-05-01 10:00:02,000 INFO phase parents ...\n"
    from datetime import datetime

    w.wall_start = datetime(2024, 5, 1, 10, 0, 0).timestamp()
    starts = mbm.phase_starts(log, w.wall_start)
    assert starts == {"base": 1.0, "parents": 2.0}
    phases = mbm.phase_peaks(w, starts)
    assert list(phases) == ["plan", "base", "parents"]
    assert phases["plan"]["main_rss_mib"] == 1.0 and phases["plan"]["start_s"] is None
    assert phases["base"]["main_rss_mib"] == 5.0 and phases["base"]["tree_rss_mib"] == 10.0
    assert phases["parents"]["main_rss_mib"] == 3.0 and phases["parents"]["tree_pss_mib"] is None


def test_export_limits_give_ten_times_the_images_and_refuse_what_cannot_be_exported():
    small, large = mbm.export_limits(50000)
    assert (small, large) == (1666, 34000)
    assert mbm.export_total(large) == 50000 and mbm.export_total(small) == 4998
    assert mbm.export_total(0) == 70000
    with pytest.raises(mbm.MeasureError, match=r"--make 80000: give between 300 and 70000 images"):
        mbm.export_limits(80000)


def test_dataset_stats_counts_images_and_decoded_bytes_from_headers(tmp_path):
    _write_pngs(tmp_path / "train" / "a", [(10, 20), (30, 40)])
    _write_pngs(tmp_path / "val" / "a", [(10, 20)])
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    stats = mbm.dataset_stats(tmp_path)
    assert stats["images"] == 3 and stats["per_split"] == {"train": 2, "val": 1}
    assert stats["image_sizes"] == {"10x20": 2, "30x40": 1}
    assert stats["decoded_rgb_mib"] == round((2 * 10 * 20 + 30 * 40) * 3 / (1 << 20), 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(mbm.MeasureError, match=r"empty: no images \(\.bmp"):
        mbm.dataset_stats(tmp_path / "empty")


def _size(images, decoded, peaks, exit_code=0):
    keys = {f"{k}_mib": v for k, v in zip(mbm.PEAKS, peaks)}
    return {"data": "<external>/x", "images": images, "decoded_rgb_mib": decoded, "wall_s": 12.0,
            "exit_code": exit_code, "peak": {**keys, "processes_max": 3}, "reported": "tree_pss"}


def test_record_has_the_ratios_and_no_absolute_paths():
    sizes = {"small": _size(100, 14.4, [300.0, 250.0, 500.0, 320.0, 200.0]),
             "large": _size(1000, 144.0, [330.0, 260.0, 560.0, 336.0, 210.0])}
    command = mbm.command_line(["--make", "2000", "--scratch", "/tmp/somewhere/scratch", "--out",
                                str(ROOT / "x.json")])
    assert command == "python scripts/measure_build_memory.py --make 2000 --scratch <external>/scratch --out x.json"
    rec = mbm.make_record(sizes, command, threads=1)
    assert {"what", "command", "timestamp_utc", "machine", "threads", "reported", "sizes",
            "ratio_large_over_small", "large_decoded_over_peak"} <= set(rec)
    assert rec["machine"]["threads"] == 1 and rec["reported"] == "tree_pss"
    r = rec["ratio_large_over_small"]
    assert r["images"] == 10.0 and r["decoded_rgb"] == 10.0
    assert r["tree_pss"] == 1.05 and r["main_rss"] == 1.1 and r["tree_rss"] == 1.12
    assert rec["large_decoded_over_peak"] == round(144.0 / 336.0, 2)
    lines = mbm.summary(rec)
    assert lines[-1].startswith("large/small: 10.0x the images, 1.05x the peak tree_pss")
    assert "/tmp" not in str(rec) and "/work" not in str(rec)


def test_bad_requests_exit_2_with_one_line(tmp_path, capsys):
    assert mbm.main(["--make", "2000"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --make needs --scratch DIR (where the exports are "
                                               "written, several GB at full size)")
    assert mbm.main(["--small", str(tmp_path / "nope"), "--large", str(tmp_path)]) == 2
    missing = tmp_path / "nope"
    assert capsys.readouterr().err.strip() == f"error: --small {missing}: not a directory; give an ImageFolder"
    _write_pngs(tmp_path / "small" / "a", [(8, 8)] * 2)
    _write_pngs(tmp_path / "large" / "a", [(8, 8)] * 19)
    assert mbm.main(["--small", str(tmp_path / "small"), "--large", str(tmp_path / "large")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("19 images, fewer than 10x --small's 2; give a larger set or a smaller one")
    assert err.count("\n") == 0


def test_recipe_batch_reads_the_first_parents_training_batch(tmp_path):
    path = tmp_path / "recipe.yaml"
    assert mbm.recipe_batch(path) is None
    path.write_text("# written by the build\nparents:\n- name: vgg_s\n  train:\n    batch_size: 64\n")
    assert mbm.recipe_batch(path) == 64
