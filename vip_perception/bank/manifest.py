"""The bank manifest: one JSON file (with a schema version) that lists every file with its
sha256, rebuilds each member's architecture and carries its profile and the machine it came
from. A member is served (in the compact set) or frontier-only (``"served": false``: weights
shipped so ``bank profile`` can re-select the compact set on another machine). It is validated
against a JSON schema and every hash is checked before any weight file is opened, so a
missing, truncated or tampered file fails with its path named."""
from __future__ import annotations

import hashlib
import json
import os

import jsonschema

from ..jsonfile import write_json
from ..share import SHIPPED_BANKS
from ..tasks import TASK_NAMES
from .records import QUANTILES, BankError

__all__ = ["CANDIDATES", "MANIFEST", "MANIFEST_SCHEMA", "SCHEMA_VERSION", "file_entry", "is_served",
           "read_manifest", "sha256_file", "validate_manifest", "write_json", "write_manifest"]

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CANDIDATES = "candidates.json"

_latency = {
    "type": "object",
    "required": list(QUANTILES),
    "properties": ({q: {"type": "number", "minimum": 0} for q in (*QUANTILES, "mean")}
                   | {"runs": {"type": "integer", "minimum": 0}}),
}
_per_threads = {"type": "object", "patternProperties": {r"^[1-9][0-9]*$": _latency}, "additionalProperties": False}
_model_fields = {
    "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]+$"},
    # "imported": an ONNX graph from elsewhere (``bank import-onnx``), served on onnxruntime
    "kind": {"enum": ["base", "parent", "vip", "imported"]},
    "spec": {"type": "object"},
    "vip_layers": {"type": "array", "items": {"type": "string"}},
    "parent": {"type": ["string", "null"]},
    "val_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
    "test_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
    "macs": {"type": "integer", "minimum": 0},
    "param_bytes": {"type": "integer", "minimum": 0},
    "train": {"type": "object"},
    "latency": _per_threads,
    # profiles of the same member on other execution backends (``bank profile --backend``)
    "backend_latency": {"type": "object", "additionalProperties": _per_threads},
    # in the compact set the node serves (absent: true, as in banks that shipped only that set);
    # false: a frontier-only member, weights present for ``bank profile`` to re-select from
    "served": {"type": "boolean"},
    # a served ViP variant that pays its speed-up rule only at some profiled thread counts is
    # served at those alone (absent: at every profiled count); ``bank profile`` keeps it current
    "served_threads": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                       "uniqueItems": True},
}
_OPTIONAL_MEMBER_FIELDS = ("backend_latency", "served", "served_threads")
_DECODER = {
    "type": "object", "required": ["format", "num_classes"],
    "properties": {"format": {"enum": ["logits", "torchvision", "yolo"]}, "num_classes": {"type": "integer",
                                                                                      "minimum": 1}},
}
# a built member's spec rebuilds its architecture; an imported one's names its graph's decoder
_SPEC_BY_KIND = {
    "if": {"properties": {"kind": {"const": "imported"}}},
    "then": {"properties": {"spec": {"required": ["format", "decoder"], "properties": {"decoder": _DECODER}}}},
    "else": {"properties": {"spec": {"anyOf": [{"required": ["family", "stages"]}, {"required": ["arch"]}]}}},
}
_file = {
    "type": "object",
    "required": ["sha256", "bytes"],
    "properties": {
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "bytes": {"type": "integer", "minimum": 0},
    },
}
MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema_version", "name", "task", "class_names", "input", "machine", "selection", "members", "files"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "name": {"type": "string"},
        "task": {"enum": list(TASK_NAMES)},
        "class_names": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "input": {
            "type": "object",
            "required": ["height", "width", "channels", "mean", "std", "invert"],
            "properties": {
                "height": {"type": "integer", "minimum": 1}, "width": {"type": "integer", "minimum": 1},
                "channels": {"enum": [1, 3]},
                "mean": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3},
                "std": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                        "minItems": 1, "maxItems": 3},
                "invert": {"type": "boolean"}, "color_order": {"const": "RGB"},
                "resize": {"enum": ["stretch", "letterbox"]}, "pad_value": {"type": "integer", "minimum": 0,
                                                                           "maximum": 255},
            },
        },
        "machine": {"type": "object", "required": ["cpu", "torch"]},
        "selection": {"type": "object", "required": ["threads", "quantile", "epsilon", "frontier"]},
        "build": {"type": "object"},
        "members": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "required": ["file", *(k for k in _model_fields if k not in _OPTIONAL_MEMBER_FIELDS)],
                "properties": {**_model_fields, "file": {"type": "string"}},
                **_SPEC_BY_KIND,
            },
        },
        "files": {"type": "object", "additionalProperties": _file, "minProperties": 1},
    },
}


def is_served(member: dict) -> bool:
    """Whether a manifest member is in the served (compact) set: its ``served`` flag, true when
    absent (manifests written before frontier-only members existed serve every member)."""
    return bool(member.get("served", True))


def sha256_file(path: str) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: str) -> dict:
    """The manifest's ``files`` entry of ``path``: {"sha256", "bytes"}."""
    return {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def _safe_relpath(directory: str, rel: str) -> str:
    """Refuse absolute or escaping paths in a manifest (a bank is a closed directory)."""
    if os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
        raise BankError(f"{os.path.join(directory, MANIFEST)}: file entry {rel!r} leaves the bank directory")
    return os.path.join(directory, rel)


def read_manifest(directory: str) -> dict:
    """Parse, schema-validate and hash-check a bank directory's manifest; return the dict."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise BankError(f"{directory}: no such bank directory (a bank is a directory holding {MANIFEST}; "
                        f"shipped banks go by name: {', '.join(SHIPPED_BANKS)})")
    if not os.path.isfile(path):
        raise BankError(f"{path}: bank manifest not found")
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BankError(f"{path}: not a readable JSON manifest ({exc})") from exc
    if isinstance(data, dict) and data.get("schema_version") not in (None, SCHEMA_VERSION):
        raise BankError(f"{path}: schema_version {data.get('schema_version')!r} not supported "
                        f"(this code reads {SCHEMA_VERSION})")
    validate_manifest(data, path)
    if not any(is_served(m) for m in data["members"]):
        raise BankError(f"{path}: no member is served (every one has \"served\": false)")
    for m in data["members"]:
        if m["file"] not in data["files"]:
            raise BankError(f"{path}: member {m['name']} file {m['file']!r} has no sha256 entry")
    for rel, entry in data["files"].items():
        fpath = _safe_relpath(directory, rel)
        if not os.path.isfile(fpath):
            raise BankError(f"{fpath}: file listed in the manifest is missing")
        size = os.path.getsize(fpath)
        if size != entry["bytes"]:
            raise BankError(f"{fpath}: size {size} bytes, manifest says {entry['bytes']} (truncated or replaced)")
        if sha256_file(fpath) != entry["sha256"]:
            raise BankError(f"{fpath}: sha256 does not match the manifest (file changed or tampered)")
    return data


def validate_manifest(data: dict, where: str = MANIFEST) -> None:
    """Schema-check a manifest dict; BankError naming ``where`` and the failing field."""
    try:
        jsonschema.validate(data, MANIFEST_SCHEMA)
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise BankError(f"{where}: manifest fails its schema at {at}: {exc.message}") from None


def write_manifest(out_dir: str, manifest: dict) -> None:
    """Write ``manifest`` as ``out_dir/manifest.json``: ``schema_version`` set to the current one
    (in ``manifest`` too), validated against the schema (BankError naming the file on failure,
    nothing written), written atomically (``jsonfile.write_json``). The files it lists are not
    re-hashed here: ``file_entry`` gives their entries."""
    path = os.path.join(os.fspath(out_dir), MANIFEST)
    manifest["schema_version"] = SCHEMA_VERSION
    validate_manifest(manifest, path)
    write_json(path, manifest)
