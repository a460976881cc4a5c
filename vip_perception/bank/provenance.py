"""What a bank records about its own build, without facts of the build machine's file system.

A shipped manifest is committed, so it must not carry ``/work/...`` or ``/tmp/...``: paths are
recorded relative to the repository (or the current directory) and anything outside both is
recorded as ``<external>/NAME``. Both bank builders write their manifest through
``save_manifest`` (schema version set, schema-validated, written atomically).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .manifest import write_manifest

EXTERNAL = "<external>"
_REPO = Path(__file__).resolve().parents[2]  # source checkout root (the package's parent)


def portable_path(path: str | os.PathLike, bases: Sequence[str | os.PathLike] | None = None) -> str:
    """``path`` as a POSIX path relative to the first of ``bases`` (default: the repository root,
    then the current directory) that contains it; ``<external>/NAME`` when none does.

    "" stays "" (a recipe's "use the default"). Relative paths are taken from the current
    directory first, as a command line means them.
    """
    if not os.fspath(path):
        return ""
    absolute = Path(os.path.abspath(os.fspath(path)))
    for base in bases if bases is not None else (_REPO, Path.cwd()):
        try:
            return absolute.relative_to(Path(os.path.abspath(os.fspath(base)))).as_posix() or "."
        except ValueError:
            continue
    return f"{EXTERNAL}/{absolute.name}"


def portable_command(argv: Sequence[str], path_flags: Sequence[str]) -> str:
    """A command line with the value of every flag in ``path_flags`` made portable
    (``--work /tmp/x`` -> ``--work <external>/x``; ``--flag=value`` is handled too)."""
    out, take = [], False
    for arg in argv:
        if take:
            out.append(portable_path(arg))
            take = False
            continue
        flag, eq, value = arg.partition("=")
        if flag in path_flags and eq:
            out.append(f"{flag}={portable_path(value)}")
        else:
            out.append(arg)
            take = arg in path_flags
    return " ".join(out)


def save_manifest(out_dir: str, manifest: dict) -> dict:
    """Validate ``manifest`` against the bank schema and write OUT_DIR/manifest.json atomically;
    return the manifest as written (``schema_version`` set, and first in the file).

    Raises BankError naming the file when the manifest does not match the schema. Delegates to
    ``bank.manifest.write_manifest``, the one writer of bank manifests.
    """
    ordered = {"schema_version": None, **{k: v for k, v in manifest.items() if k != "schema_version"}}
    write_manifest(out_dir, ordered)
    return ordered
