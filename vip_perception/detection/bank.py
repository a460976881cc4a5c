"""Loading a detector bank: the classifier bank's manifest layout with task "detection".

Why a separate loader (for now): ``bank.load_bank`` accepts task "classification" only and
rebuilds members with ``ModelSpec``. This module checks the same schema (task widened), the same
sha256 of every file before any weight file is parsed, and returns the same ``Bank``/``Member``
records, with each member's module a torchvision FasterRCNN rebuilt from its DetectorSpec.
Once ``load_bank`` dispatches on task (see /work/team/requests-detector.md) it can call
``build_member`` here and this module shrinks to that.
"""
from __future__ import annotations

import copy
import json
import os

import jsonschema

from ..bank.bank import Bank, Member
from ..bank.manifest import MANIFEST, MANIFEST_SCHEMA, SCHEMA_VERSION, sha256_file
from ..bank.records import BankError, InputSpec, LatencyProfile
from .builder import TASK, build_member

SCHEMA = copy.deepcopy(MANIFEST_SCHEMA)
SCHEMA["properties"]["task"] = {"const": TASK}


def read_detector_manifest(directory: str) -> dict:
    """Parse, schema-check and hash-check ``directory``/manifest.json; BankError names the path."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise BankError(f"{path}: bank manifest not found")
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BankError(f"{path}: not a readable JSON manifest ({exc})") from exc
    if isinstance(data, dict) and data.get("schema_version") not in (None, SCHEMA_VERSION):
        raise BankError(f"{path}: schema_version {data.get('schema_version')!r} not supported")
    try:
        jsonschema.validate(data, SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise BankError(f"{path}: manifest fails its schema at {where}: {exc.message}") from None
    for m in data["members"]:
        if m["file"] not in data["files"]:
            raise BankError(f"{path}: member {m['name']} file {m['file']!r} has no sha256 entry")
    for rel, entry in data["files"].items():
        if os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
            raise BankError(f"{path}: file entry {rel!r} leaves the bank directory")
        fpath = os.path.join(directory, rel)
        if not os.path.isfile(fpath):
            raise BankError(f"{fpath}: file listed in the manifest is missing")
        if os.path.getsize(fpath) != entry["bytes"]:
            raise BankError(f"{fpath}: size {os.path.getsize(fpath)} bytes, manifest says {entry['bytes']}")
        if sha256_file(fpath) != entry["sha256"]:
            raise BankError(f"{fpath}: sha256 does not match the manifest (file changed or tampered)")
    return data


def load_detector_bank(path: str) -> Bank:
    """Validate and load a detector bank; members sorted by selection latency, as in load_bank."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = os.fspath(path)
    if os.path.isfile(path) and os.path.basename(path) == MANIFEST:
        path = os.path.dirname(path) or "."
    data = read_detector_manifest(path)
    members = []
    for m in data["members"]:
        fpath = os.path.join(path, m["file"])
        try:
            module = build_member(m["spec"], m["vip_layers"])
        except (ValueError, TypeError, KeyError) as exc:
            raise BankError(f"{os.path.join(path, MANIFEST)}: member {m['name']}: cannot rebuild detector ({exc})") from exc
        try:
            module.load_state_dict(load_file(fpath), strict=True)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise BankError(f"{fpath}: weights do not load into the manifest's detector ({exc})") from exc
        members.append(Member(
            name=m["name"], val_accuracy=m["val_accuracy"], test_accuracy=m["test_accuracy"],
            vip_layers=list(m["vip_layers"]), parent=m["parent"], macs=m["macs"], param_bytes=m["param_bytes"],
            latency={int(t): LatencyProfile.from_dict(p) for t, p in m["latency"].items()},
            module=module.eval(), spec=m["spec"], file=m["file"],
        ))
    q, t = data["selection"]["quantile"], data["selection"]["threads"]
    members.sort(key=lambda m: (m.quantile_ms(t, q) if t in m.latency else 0.0, m.val_accuracy))
    return Bank(path=path, name=data["name"], task=data["task"], class_names=list(data["class_names"]),
                input_spec=InputSpec.from_dict(data["input"]), members=members, manifest=data)
