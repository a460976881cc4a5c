"""Parameter changes of the perception node: validated first (no side effects), applied after.

rclpy calls ``on_set`` before a change and ``post_set`` after it was accepted. ``on_set``
answers with the first reason (``parameters.validate_change``, then whether the would-be bank
serves the would-be settings); a bank or backend change is loaded completely during that
validation, so a bad bank is rejected while the old one keeps serving. ``post_set`` publishes
the new ``Settings`` snapshot and hands the loaded bank to the worker (``take_pending_bank``).
rclpy's plain set_parameters service validates one parameter at a time, so a pair that is only
valid together (an onnxruntime-profiled bank and backend onnxruntime) is set in one atomic call.
"""
from __future__ import annotations

import threading

from rcl_interfaces.msg import SetParametersResult

from . import bank_checks, parameters


class ParameterGate:
    """The node's current ``settings`` and the bank a change has loaded but not yet served."""

    def __init__(self, settings: parameters.Settings, log, run=None):
        """``run(fn, *args)``: how a bank is loaded (the node's serving thread, where every
        torch call of the node runs; default: here)."""
        self.settings = settings
        self.log = log
        self._run = run or (lambda fn, *args: fn(*args))
        self._checked = None   # (bank parameter, backend, Bank) of the last accepted validation
        self._pending = None   # Bank the worker switches to at its next frame
        self._lock = threading.Lock()

    def _check_bank(self, path: str, backend: str) -> str | None:
        reason, bank = self._run(bank_checks.load_checked, self.settings, path, backend)
        if bank is not None:
            self._checked = (path, backend, bank)
        return reason

    def on_set(self, params, serving_bank, frame_sizes: dict) -> SetParametersResult:
        """Accept ``params`` or reject them with the first reason. ``serving_bank`` is the
        engine's bank (None before configure); ``frame_sizes`` {camera: (h, w)} seen so far."""
        result = parameters.validate_change(self.settings, params, self._check_bank,
                                            frame_sizes)
        if not result.successful:
            return result
        changes = {p.name: p.value for p in params if p.name in parameters.SPEC_BY_NAME}
        s = self.settings.replace(**{k: v for k, v in changes.items() if v is not None})
        reload = bool({"bank", "backend"} & set(changes))
        bank = self._checked[2] if reload and self._checked is not None else serving_bank
        if bank is not None and (reload or s.engine_fields() != self.settings.engine_fields()):
            reason = bank_checks.fit_reason(bank, s)
            if reason:
                result.successful, result.reason = False, reason
        return result

    def post_set(self, params) -> None:
        """Apply accepted ``params`` to ``settings``; a bank/backend change becomes pending."""
        changes = {p.name: ([] if p.value is None else p.value) for p in params
                   if p.name in parameters.SPEC_BY_NAME}
        if not changes:
            return
        with self._lock:
            self.settings = self.settings.replace(**changes)
            if {"bank", "backend"} & set(changes):
                checked = self._checked
                if checked is not None and checked[:2] == (self.settings.bank,
                                                           self.settings.backend):
                    self._pending = checked[2]
                self._checked = None
        self.log.info("parameters set: " + ", ".join(f"{k}={v!r}" for k, v in changes.items()))

    def take_pending_bank(self):
        """The bank to switch to now (once), or None."""
        with self._lock:
            bank, self._pending = self._pending, None
        return bank

    def clear_pending_bank(self) -> None:
        with self._lock:
            self._pending = None
