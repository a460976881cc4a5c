"""Which bank the node serves, and whether a would-be bank or setting can serve.

Everything here answers before anything changes: ``load_checked`` loads a candidate bank
completely (schema, checksums, every member's weights) so a bad one is rejected with the
reason while the old one keeps serving; ``fit_reason`` asks the engine's own selector whether
a bank serves a set of settings (e.g. threads=4 needs a profile at 4 threads).
"""
from __future__ import annotations

from vip_perception.bank import BankError, load_bank
from vip_perception.runtime.engine import Engine
from vip_perception.runtime.selector import Selector
from vip_perception.share import bank_directory, share_candidates
from vip_perception.tasks import get_task

from .parameters import Settings, engine_config

SHIPPED_BANK = "config/banks/fashion_mnist"


def default_bank_path() -> str:
    """The shipped bank's directory wherever the package was installed (the source-tree path
    when none holds a manifest.json, so the load error names it)."""
    for c in share_candidates(SHIPPED_BANK):
        if (c / "manifest.json").is_file():
            return str(c)
    return str(share_candidates(SHIPPED_BANK)[-2])


def bank_path(parameter: str) -> str:
    """The directory the ``bank`` parameter names (empty: the shipped bank)."""
    return bank_directory(parameter) or default_bank_path()


def default_engine_factory(bank, settings: Settings, clock) -> Engine:
    """The production engine: ``bank`` served under ``settings``, timed by ``clock``."""
    return Engine(bank, engine_config(settings), clock=clock)


def output_kind(bank) -> str:
    """The message family the bank's task publishes ("classification" | "detection")."""
    return get_task(bank.task).output_kind


def _rejection(current: Settings, path: str, backend: str) -> str:
    """How a rejection starts: names what was being changed."""
    if backend != current.backend and path == current.bank:
        return f"backend {backend} rejected"
    if backend != current.backend:
        return f"bank {bank_path(path)} on backend {backend} rejected"
    if backend != "torch":  # the bank alone changed: say which backend it was tried on
        return (f"bank rejected on the current backend {backend} (to change both, set bank "
                f"and backend in one atomic call)")
    return "bank rejected"


def load_checked(current: Settings, path: str, backend: str):
    """Load bank parameter ``path`` on ``backend`` with every member's weights.

    Returns (None, bank) when it loads, else (reason, None) with a one-line reason naming
    what was being changed. Never raises; changes nothing."""
    what = _rejection(current, path, backend)
    try:
        bank = load_bank(bank_path(path), backend=backend)
    except BankError as exc:
        return f"{what}: {exc}", None
    except Exception as exc:  # noqa: BLE001 - any load failure is a rejection with reason
        return f"{what}: {type(exc).__name__}: {exc}", None
    try:
        for member in bank.members:  # lazily loaded weights: load (and fail) now
            _ = member.module
    except Exception as exc:  # noqa: BLE001
        return f"{what}: cannot load members: {type(exc).__name__}: {exc}", None
    return None, bank


def fit_reason(bank, settings: Settings) -> str | None:
    """Why ``bank`` cannot serve ``settings`` (the engine selector's own rule), or None."""
    try:
        Selector(bank.members, settings.latency_quantile, int(settings.threads),
                 settings.on_no_fit)
    except (ValueError, KeyError) as exc:
        return f"bank {getattr(bank, 'path', '?')} cannot serve these settings: {exc}"
    return None


def bank_info(bank, error: str | None, calibration=None) -> dict:
    """{"path", "name", "task", "backend", "members", "error", "calibration"} of ``bank`` (only
    "error" when None): what diagnostics and the summary report. ``calibration``: the engine's
    last ``CalibrationReport`` of this bank (its ``to_dict``; None when not calibrated)."""
    if bank is None:
        return {"error": error}
    return {"path": str(bank.path), "name": bank.name, "task": bank.task,
            "backend": getattr(bank, "backend", "torch"), "members": len(bank.members),
            "error": error, "calibration": None if calibration is None else calibration.to_dict()}


def engine_info(engine, error: str | None) -> dict:
    """``bank_info`` of the bank ``engine`` serves (None: no engine yet), with its calibration."""
    return bank_info(getattr(engine, "bank", None), error, getattr(engine, "calibration", None))


def swap_bank(engine, bank, log, calibrate: bool = False) -> str | None:
    """Switch ``engine`` to the already loaded ``bank`` between frames and, with ``calibrate``,
    calibrate it on this machine (``Engine.calibrate``; its line logged). Returns None, or the
    error (also logged) when the engine refused it and the old bank keeps serving."""
    old = getattr(engine.bank, "path", engine.bank)
    try:
        engine.swap_bank(bank)
    except Exception as exc:  # noqa: BLE001 - old bank keeps serving
        log.error(f"bank swap to {bank.path} failed, keeping {old}: {exc}")
        return str(exc)
    log.info(f"bank swapped: {old} -> {bank.path}")
    if calibrate and hasattr(engine, "calibrate"):
        log.info(f"bank {bank.path}: {engine.calibrate().describe()}")
    return None


def update_config(engine, settings: Settings, log) -> None:
    """Give ``engine`` the config of ``settings``; on ValueError (validated already, so not
    expected) the engine keeps its previous config and the reason is logged."""
    try:
        engine.update_config(engine_config(settings))
    except ValueError as exc:
        log.error(f"engine kept its previous config: {exc}")
