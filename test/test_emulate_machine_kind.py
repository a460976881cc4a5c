"""scripts/emulate_machine_kind.py: a bank copy whose profile describes another machine kind."""
import importlib.util
import os
import subprocess
import sys

import pytest

from vip_perception.bank.manifest import read_manifest
from vip_perception.share import share_path

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "emulate_machine_kind.py")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=120)


def test_every_profile_is_scaled_and_the_copy_says_so(tmp_path):
    src = str(share_path("config/banks/station"))
    out = str(tmp_path / "foreign")
    r = run(src, out, "--scale", "0.5")
    assert r.returncode == 0, r.stderr
    before, after = read_manifest(src), read_manifest(out)  # the copy passes every check a bank gets
    assert after["machine"]["emulated_scale"] == 0.5 and "not a measurement" in after["machine"]["note"]
    assert {k: v for k, v in after["machine"].items() if k not in ("emulated_scale", "note")} == before["machine"]
    pairs = 0
    for m0, m1 in zip(before["members"], after["members"]):
        for t, prof in m0["latency"].items():
            for q in ("p50", "p95", "p99"):
                assert m1["latency"][t][q] == pytest.approx(prof[q] * 0.5)
            assert m1["latency"][t]["runs"] == prof["runs"]
            pairs += 1
    assert pairs >= 2 * len(before["members"]) - 1


def _main_in_process(capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of the script's ``main`` run in this process: the refusals happen
    before anything heavy, so no child interpreter is needed to see them."""
    spec = importlib.util.spec_from_file_location("emulate_machine_kind", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(list(args))
    return code, capsys.readouterr().err


def test_bad_requests_are_refused_with_the_reason(tmp_path, capsys):
    src = str(share_path("config/banks/station"))
    code, err = _main_in_process(capsys, src, str(tmp_path / "x"), "--scale", "0")
    assert code == 2 and "--scale must be > 0" in err
    (tmp_path / "exists").mkdir()
    code, err = _main_in_process(capsys, src, str(tmp_path / "exists"), "--scale", "0.5")
    assert code == 2 and "exists" in err
    code, err = _main_in_process(capsys, str(tmp_path), str(tmp_path / "y"), "--scale", "0.5")
    assert code == 2 and "manifest not found" in err and not (tmp_path / "y").exists()
