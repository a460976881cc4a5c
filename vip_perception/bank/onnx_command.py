"""`vip-perception bank export-onnx DIR --out OUT_DIR`: each member of a classification bank as a
standalone ONNX file, for runtimes outside this package (ONNX Runtime, TensorRT, OpenVINO).

Exported from the plain ViP model (ViP upsampling as an exact ``Resize``: linear, asymmetric),
at batch 1 and the bank's input size, and verified in ONNX Runtime against the PyTorch member
before it is written: a file that would predict differently is never produced. The bank's
preprocessing (resize, grey, normalisation) is not part of the graph; ``OUT_DIR/export.json``
records it with each file's sha256.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bank", help="classification bank directory (manifest.json)")
    parser.add_argument("--out", required=True, help="directory for <member>.onnx files and export.json")
    parser.add_argument("--member", action="append", help="export only this member (repeatable; default all)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="largest relative difference accepted (default 1e-4)")


def export_bank(path: str, out_dir: str, members: list[str] | None = None, rtol: float = 1e-4) -> dict:
    import torch

    from ..export import export_onnx, verify_onnx
    from .bank import build_member_module, load_bank, load_weights
    from .manifest import sha256_file
    from .records import BankError

    bank = load_bank(path)
    if bank.task != "classification":
        raise BankError(f"{path}: export-onnx exports classification banks (this is a {bank.task} bank)")
    chosen = [bank.member(n) for n in members] if members else bank.members  # KeyError names the member
    s = bank.input_spec
    probe = torch.randn(1, s.channels, s.height, s.width, generator=torch.Generator().manual_seed(0))
    os.makedirs(out_dir, exist_ok=True)
    record = {"bank": os.path.abspath(path), "bank_name": bank.name, "input": bank.manifest["input"],
              "class_names": bank.class_names, "members": {}}
    for m in chosen:
        plain = load_weights(build_member_module(m.spec, m.vip_layers, bank.task), os.path.join(bank.path, m.file))
        onnx_bytes = export_onnx(plain, probe)
        check = verify_onnx(plain, onnx_bytes, probe, rtol=rtol)
        if not check.ok:
            raise BankError(f"{m.name}: ONNX export differs from PyTorch by {check.max_rel_error:.2e} relative (> {rtol})")
        fpath = os.path.join(out_dir, f"{m.name}.onnx")
        with open(fpath + ".tmp", "wb") as fh:
            fh.write(onnx_bytes)
        os.replace(fpath + ".tmp", fpath)
        record["members"][m.name] = {"file": os.path.basename(fpath), "sha256": sha256_file(fpath),
                                     "bytes": os.path.getsize(fpath), "vip_layers": m.vip_layers,
                                     "max_rel_error": check.max_rel_error, "test_accuracy": m.test_accuracy}
    with open(os.path.join(out_dir, "export.json"), "w") as fh:
        json.dump(record, fh, indent=1)
        fh.write("\n")
    return record


def run(args) -> int:
    from .records import BankError

    try:
        rec = export_bank(args.bank, args.out, args.member, args.rtol)
    except (BankError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, m in rec["members"].items():
        print(f"{name:<14} {m['file']:<22} {m['bytes'] / 1e6:6.2f} MB  max rel diff {m['max_rel_error']:.1e}")
    print(f"wrote {len(rec['members'])} ONNX files and export.json to {args.out}")
    return 0
