"""Nothing the node loads can run code: no pickle anywhere in the package, torch.load only with
weights_only=True, bank manifests schema-checked before any file is opened, and native kernels
compiled only from the package's own source. (The `bank` parameter check is in
test_reliability_faults.py, where a node runs.)"""
from __future__ import annotations

import ast
import builtins
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_BANK = ROOT / "config" / "banks" / "fashion_mnist"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                  "marshal", "pickletools"}
UNSAFE_CALLS = {"pandas.read_pickle", "pd.read_pickle", "torch.hub.load",
                "torch.hub.load_state_dict_from_url", "load_state_dict_from_url",
                "torch.jit.load", "yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
IMPORT_BY_NAME = {"importlib.import_module", "import_module", "__import__"}
# Directories that are not the project's source: environments, build outputs, caches, tests
# (the tests build pickles on purpose, to prove they are refused).
NOT_SOURCE = {".git", ".venv", "venv", "build", "install", "log", "__pycache__", "test", ".hypothesis",
              ".pytest_cache"}

pytestmark = pytest.mark.timeout(120)


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def unsafe_uses(source: str, filename: str = "<src>") -> list[str]:
    """Every pickle import, torch.load without weights_only=True, np.load(allow_pickle=True)
    and code-downloading loader in ``source``."""
    found = []
    tree = ast.parse(source, filename)
    torch_load_names = {"torch.load"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{filename}:{node.lineno}: import {a.name}")
                if a.name == "torch" and a.asname:
                    torch_load_names.add(f"{a.asname}.load")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES:
                found.append(f"{filename}:{node.lineno}: from {node.module} import ...")
            if node.module == "torch":
                torch_load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in torch_load_names and not _kw_true(node, "weights_only"):
                found.append(f"{filename}:{node.lineno}: {name}(...) without weights_only=True")
            if name.endswith("np.load") or name == "numpy.load":
                if any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant)
                                                        and k.value.value is False)
                       for k in node.keywords):
                    found.append(f"{filename}:{node.lineno}: {name}(allow_pickle=...)")
            if name in UNSAFE_CALLS:
                found.append(f"{filename}:{node.lineno}: {name}(...)")
            if name in ("yaml.load", "yaml.load_all") and not _safe_yaml_loader(node):
                found.append(f"{filename}:{node.lineno}: {name}(...) without a safe Loader")
            if name in IMPORT_BY_NAME and node.args and isinstance(node.args[0], ast.Constant) \
                    and str(node.args[0].value).split(".")[0] in UNSAFE_MODULES:
                found.append(f"{filename}:{node.lineno}: {name}({node.args[0].value!r})")
    return found


def _safe_yaml_loader(call: ast.Call) -> bool:
    loader = next((k.value for k in call.keywords if k.arg == "Loader"), call.args[1] if len(call.args) > 1 else None)
    return loader is not None and _dotted(loader).rsplit(".", 1)[-1] in SAFE_YAML_LOADERS


def _package_sources() -> list[Path]:
    """Every Python file of the project, wherever the layout puts it (package, launch, scripts,
    setup.py), found by walking the repository (environments and build outputs pruned)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in NOT_SOURCE and not d.startswith(".")
                       and not d.endswith(".egg-info")]
        files += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return sorted(files)


def test_the_scanner_catches_what_it_looks_for():
    bad = ("import pickle\nfrom dill import loads\nimport torch as T\nfrom torch import load\n"
           "T.load('x')\ntorch.load('x', weights_only=False)\nload('y')\n"
           "np.load('z', allow_pickle=True)\npd.read_pickle('w')\ntorch.load('ok', weights_only=True)\n"
           "yaml.load(f)\nyaml.load(f, Loader=yaml.Loader)\nyaml.load(f, Loader=yaml.SafeLoader)\n"
           "yaml.safe_load(f)\nimportlib.import_module('pickle')\ntorch.jit.load('m.pt')\n")
    found = unsafe_uses(bad)
    assert len(found) == 11, found
    for safe_line in (10, 13, 14):  # weights_only=True, SafeLoader and safe_load are fine
        assert not any(f":{safe_line}:" in f for f in found), found


def test_every_python_file_of_the_project_is_scanned():
    scanned = {str(p.relative_to(ROOT)) for p in _package_sources()}
    expected = {str(p.relative_to(ROOT)) for p in (ROOT / "vip_perception").rglob("*.py")
                if "__pycache__" not in p.parts}
    assert expected <= scanned and "setup.py" in scanned
    assert any(s.startswith("launch/") for s in scanned)
    assert not any(s.startswith("test/") for s in scanned)


def test_package_has_no_pickle_and_only_weights_only_torch_load():
    files = _package_sources()
    assert len(files) > 30
    found = [f for p in files for f in unsafe_uses(p.read_text(), str(p.relative_to(ROOT)))]
    assert found == [], "unsafe loading:\n" + "\n".join(found)


@pytest.fixture
def bank_copy(request, tmp_path) -> Path:
    """A private copy of the shipped bank (the session's quick bank when none is built)."""
    src = SHIPPED_BANK if (SHIPPED_BANK / "manifest.json").is_file() else \
        Path(request.getfixturevalue("quick_bank"))
    dst = tmp_path / "bank"
    shutil.copytree(src, dst)
    return dst


class _Evil:
    """Unpickling this creates a marker file: proof that a pickle was executed."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_posing_as_weights_with_a_valid_checksum_is_never_unpickled(tmp_path, bank_copy):
    from vip_perception.bank import BankError, load_bank
    from vip_perception.bank.manifest import file_entry
    bank = bank_copy
    manifest = json.loads((bank / "manifest.json").read_text())
    member_file = manifest["members"][0]["file"]
    marker = tmp_path / "PWNED"
    (bank / member_file).write_bytes(pickle.dumps({"state": _Evil(str(marker))}))
    manifest["files"][member_file] = file_entry(str(bank / member_file))  # checksum matches
    (bank / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BankError) as err:
        load_bank(str(bank))
    assert member_file in str(err.value) and "safetensors" in str(err.value)
    assert not marker.exists()


def test_manifest_is_schema_checked_before_any_other_file_is_opened(bank_copy, monkeypatch):
    from vip_perception.bank import BankError, load_bank
    bank = bank_copy
    manifest = json.loads((bank / "manifest.json").read_text())
    manifest["members"][0]["macs"] = "many"  # schema violation
    (bank / "manifest.json").write_text(json.dumps(manifest))
    weights = bank / manifest["members"][0]["file"]
    weights.write_bytes(b"tampered")         # would also fail its checksum, later
    opened = []
    real_open = builtins.open

    def spy(file, *a, **kw):
        opened.append(os.path.abspath(os.fspath(file)) if not isinstance(file, int) else file)
        return real_open(file, *a, **kw)

    monkeypatch.setattr(builtins, "open", spy)
    with pytest.raises(BankError) as err:
        load_bank(str(bank))
    monkeypatch.undo()
    assert "schema" in str(err.value) and "macs" in str(err.value)
    assert opened == [str(bank / "manifest.json")], opened


def test_manifest_file_entries_cannot_leave_the_bank_directory(tmp_path, bank_copy):
    from vip_perception.bank import BankError, load_bank
    bank = bank_copy
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"x" * 10)
    manifest = json.loads((bank / "manifest.json").read_text())
    manifest["files"]["../secret.bin"] = {"sha256": "0" * 64, "bytes": 10}
    (bank / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BankError) as err:
        load_bank(str(bank))
    assert "leaves the bank directory" in str(err.value)


def test_native_kernels_are_built_only_from_the_package_source(tmp_path):
    """In a fresh interpreter (no kernel registered yet), record what cpp_extension.load
    would be asked to compile."""
    probe = r"""
import json, sys
from torch.utils import cpp_extension
calls = []
def fake_load(**kw):
    calls.append(kw)
    raise RuntimeError("recorded, not built")
cpp_extension.load = fake_load
from vip_perception.fused import native
ok, reason = native._try_load()
src = native.kernel_source()
print(json.dumps({"ok": ok, "reason": reason, "source": str(src), "calls": [
    {k: (v if isinstance(v, (str, list, bool, type(None))) else str(v)) for k, v in c.items()}
    for c in calls]}))
"""
    env = dict(os.environ, VIP_PERCEPTION_NATIVE="1", VIP_PERCEPTION_KERNEL_CACHE=str(tmp_path),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    source = Path(out["source"])
    allowed = [ROOT / "kernels", Path(sys.prefix) / "share" / "vip_perception" / "kernels"]
    assert any(source.parent == a for a in allowed), source
    assert out["ok"] is False and "recorded, not built" in out["reason"]
    (call,) = out["calls"]
    # What is compiled is a byte-identical copy of the package source inside the build cache
    # (a stable path, so a new install location does not make ninja rebuild).
    (compiled,) = (Path(p) for p in call["sources"])
    assert compiled.is_relative_to(tmp_path) and compiled.read_bytes() == source.read_bytes()
    for key in ("extra_include_paths", "extra_ldflags", "extra_cuda_cflags"):
        assert not call.get(key), (key, call.get(key))
    assert all(f.startswith(("-O", "-m")) for f in call["extra_cflags"]), call["extra_cflags"]
    assert Path(call["build_directory"]).is_relative_to(tmp_path)
    # The cache is keyed by the source's hash: an edited source never reuses an old build.
    import hashlib
    digest = hashlib.sha256(source.read_bytes() + " ".join(call["extra_cflags"]).encode()).hexdigest()[:12]
    assert call["name"].endswith(digest) and digest in call["build_directory"]
    assert {p.suffix for p in (ROOT / "kernels").iterdir()} <= {".cpp", ".h", ".hpp", ".md"}
