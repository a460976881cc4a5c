"""benchmarks/README.md is generated from benchmarks/*.json and cannot drift from them."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "scripts" / "benchmarks_readme.py"
RECORDS = ROOT / "benchmarks"


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATOR), *args], check=False, capture_output=True,
                          text=True, timeout=120)


def test_committed_readme_matches_the_records():
    result = _run("--check")
    assert result.returncode == 0, result.stderr


def test_check_fails_when_a_record_changes(tmp_path):
    records = tmp_path / "benchmarks"
    shutil.copytree(RECORDS, records)
    assert _run("--records", str(records), "--check").returncode == 0
    path = records / "node_bench.json"
    data = json.loads(path.read_text())
    data["delivery"]["fastdds_defaults"]["received"] += 1
    path.write_text(json.dumps(data))
    result = _run("--records", str(records), "--check")
    assert result.returncode == 1
    assert "out of date" in result.stderr


def test_a_record_without_a_section_is_an_error(tmp_path):
    records = tmp_path / "benchmarks"
    shutil.copytree(RECORDS, records)
    (records / "new_benchmark.json").write_text("{}")
    result = _run("--records", str(records), "--check")
    assert result.returncode != 0
    assert "new_benchmark.json" in result.stderr


def test_node_delivery_figure_is_the_recorded_one():
    data = json.loads((RECORDS / "node_bench.json").read_text())
    d = data["delivery"]["fastdds_defaults"]
    text = (RECORDS / "README.md").read_text()
    assert f"| Fast DDS defaults | {d['received']} / {d['sent']} |" in text


def test_records_hold_no_build_machine_paths():
    for path in sorted(RECORDS.glob("*.json")):
        text = path.read_text()
        found = re.findall(r'"[^"]*(?:/work/|/tmp/|/root/|/home/)[^"]*"', text)
        assert not found, f"{path.name}: absolute build-machine paths {found[:3]}"
