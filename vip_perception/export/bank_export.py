"""Each member of a bank as a standalone ONNX file, for runtimes outside this package (ONNX
Runtime, TensorRT, OpenVINO): ``vip-perception bank export-onnx``.

Exported from the plain ViP model (ViP upsampling as an exact ``Resize``: linear, asymmetric),
at batch 1 and the bank's input size, and verified in ONNX Runtime against the PyTorch member
before it is written: a file that would predict differently is never produced. The bank's
preprocessing (resize, grey, normalisation) is not part of the graph; ``OUT_DIR/export.json``
records it with each file's sha256.
"""
from __future__ import annotations

import os

import torch

from ..bank.bank import load_bank, load_weights
from ..bank.manifest import sha256_file
from ..bank.records import BankError
from ..jsonfile import write_json
from ..tasks import get_task
from .onnx_export import export_onnx, verify_onnx

__all__ = ["export_bank"]


def _write_bytes(path: str, data: bytes) -> None:
    with open(path + ".tmp", "wb") as fh:
        fh.write(data)
    os.replace(path + ".tmp", path)


def export_bank(path: str, out_dir: str, members: list[str] | None = None, rtol: float = 1e-4) -> dict:
    """Write ``out_dir/<member>.onnx`` for ``members`` (default all) of the bank in ``path`` and
    ``out_dir/export.json``; returns that record. BankError when the bank's task has no ONNX
    export or an export differs from PyTorch by more than ``rtol`` (relative); KeyError names an
    unknown member."""
    bank = load_bank(path)
    task = get_task(bank.task)
    if not task.exports_onnx:
        raise BankError(f"{path}: export-onnx does not export {bank.task} banks")
    chosen = [bank.member(n) for n in members] if members else bank.members  # KeyError names the member
    s = bank.input_spec
    probe = torch.randn(1, s.channels, s.height, s.width, generator=torch.Generator().manual_seed(0))
    os.makedirs(out_dir, exist_ok=True)
    record = {"bank": os.path.abspath(path), "bank_name": bank.name, "input": bank.manifest["input"],
              "class_names": bank.class_names, "members": {}}
    for m in chosen:
        plain = load_weights(task.build_member(m.spec, m.vip_layers), os.path.join(bank.path, m.file))
        onnx_bytes = export_onnx(plain, probe)
        check = verify_onnx(plain, onnx_bytes, probe, rtol=rtol)
        if not check.ok:
            raise BankError(f"{m.name}: ONNX export differs from PyTorch by {check.max_rel_error:.2e} "
                            f"relative (> {rtol})")
        fpath = os.path.join(out_dir, f"{m.name}.onnx")
        _write_bytes(fpath, onnx_bytes)
        record["members"][m.name] = {"file": os.path.basename(fpath), "sha256": sha256_file(fpath),
                                     "bytes": os.path.getsize(fpath), "vip_layers": m.vip_layers,
                                     "max_rel_error": check.max_rel_error, "test_accuracy": m.test_accuracy}
    write_json(os.path.join(out_dir, "export.json"), record)
    return record
