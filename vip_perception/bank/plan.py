"""Splitting a time budget over a classifier bank build: parents' epochs, ViP sensitivity
images, fine-tune images and variant counts, profile runs; and what did not fit.

``plan_build`` is a pure function of measured throughputs (``ParentCost``), so it is tested
with made-up numbers; ``bank.auto_recipe`` measures them and turns the plan into a recipe.
The shares are fixed: 55 % of the budget trains the parents, 37 % derives ViP variants
(sensitivity, then fine-tuning), 8 % profiles. Time a parent cannot use (it reached
``max_epochs``) goes to ViP.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

TRAIN_SHARE, VIP_SHARE, PROFILE_SHARE = 0.55, 0.37, 0.08
SENSITIVITY_SHARE = 0.3  # of a parent's ViP time, at most, for its per-layer sensitivity pass
MIN_SENSITIVITY_SAMPLES = 16  # fewer validation images (unless val is smaller) cannot rank layers: no ViP then


@dataclass(frozen=True)
class ParentCost:
    """What one parent costs, measured at the bank's input size and thread count."""

    name: str
    train_ips: float  # training images per second (forward + backward + step, data loading included)
    eval_ips: float  # inference images per second (batched)
    latency_ms: float  # batch-1 inference, milliseconds
    vip_layers: int  # ViP-able convolutions (one sensitivity probe each)


@dataclass
class ParentPlan:
    name: str
    epochs: float  # passes over the training split
    vip_variants: int  # ViP layer groups fine-tuned from it


@dataclass
class BuildPlan:
    """The budget's split; ``seconds`` are the planned phase times, ``skipped`` says what did not fit."""

    parents: list[ParentPlan]
    sensitivity_samples: int  # validation images per sensitivity probe
    finetune_epochs: float  # passes over the training split per ViP variant
    profile_runs: int  # timed batch-1 runs per candidate and thread count
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BuildPlan":
        return cls(**{**d, "parents": [ParentPlan(**p) for p in d["parents"]]})


def _parent_epochs(costs: list[ParentCost], seconds: float, n_train: int, min_epochs: float, max_epochs: float,
                   skipped: list[str]) -> dict[str, float]:
    """Equal time per parent; the slowest is dropped while a parent cannot reach ``min_epochs``."""
    kept = sorted(costs, key=lambda c: -c.train_ips)
    while True:
        each = seconds / len(kept)
        epochs = {c.name: min(max_epochs, each * c.train_ips / n_train) for c in kept}
        short = [c for c in kept if epochs[c.name] < min_epochs]
        if not short or len(kept) == 1:
            break
        slow = kept.pop()
        need = min_epochs * n_train / slow.train_ips
        skipped.append(f"parent {slow.name}: {min_epochs:g} epoch needs {need:.0f} s, its share was {each:.0f} s")
    for c in kept:
        if epochs[c.name] < min_epochs:
            skipped.append(f"parent {c.name}: trained {epochs[c.name]:.2f} epochs only (wanted >= {min_epochs:g})")
    return epochs


def _vip_plan(costs: list[ParentCost], seconds: float, n_train: int, n_val: int, finetune_epochs: float,
              max_variants: int, skipped: list[str]) -> tuple[int, dict[str, int], float]:
    """Sensitivity images (shared), variants per parent and the fine-tune epochs per variant."""
    if not costs or seconds <= 0:
        return 0, {c.name: 0 for c in costs}, finetune_epochs
    each = seconds / len(costs)
    fit = [int(SENSITIVITY_SHARE * each * c.eval_ips / c.vip_layers) for c in costs if c.vip_layers]
    sens = min([n_val, 1000, *fit]) if fit else 0
    variants = {}
    for c in costs:
        if not c.vip_layers:
            variants[c.name] = 0
            skipped.append(f"ViP variants of {c.name}: no ViP-able convolution")
            continue
        if sens < min(MIN_SENSITIVITY_SAMPLES, n_val):  # a small val split is used whole
            variants[c.name] = 0
            skipped.append(f"ViP variants of {c.name}: sensitivity of {c.vip_layers} layers does not fit "
                           f"{each:.0f} s")
            continue
        left = each - c.vip_layers * sens / c.eval_ips
        one = finetune_epochs * n_train / c.train_ips
        variants[c.name] = max(0, min(max_variants, int(left // one)))
        if variants[c.name] < max_variants:
            skipped.append(f"ViP variants of {c.name}: {max_variants - variants[c.name]} of {max_variants} "
                           f"left out, {variants[c.name]} built (each fine-tune takes {one:.0f} s, "
                           f"{max(0.0, left):.0f} s left)")
    return sens, variants, finetune_epochs


def plan_build(budget_s: float, n_train: int, n_val: int, costs: list[ParentCost], *, threads: int = 1,
               min_epochs: float = 1.0, max_epochs: float = 30.0, finetune_epochs: float = 1.0,
               max_variants: int = 6, max_profile_runs: int = 200) -> BuildPlan:
    """Split ``budget_s`` seconds (what is left after measuring) over the phases.

    Parents share the training time equally (epochs capped at ``max_epochs``; a parent that
    cannot reach ``min_epochs`` is dropped, slowest first, unless it is the last). Each kept
    parent's ViP time pays for its sensitivity pass (images shared by all parents, at most
    ``SENSITIVITY_SHARE`` of it) and then as many fine-tunes of ``finetune_epochs`` as fit, up
    to ``max_variants``. Profiling gets the rest: runs per candidate and thread count, at least
    10. ValueError for an empty parent list or non-positive sizes.
    """
    if not costs:
        raise ValueError("plan_build: no parent to plan")
    if n_train < 1 or n_val < 1 or budget_s <= 0:
        raise ValueError(f"plan_build: need positive budget and split sizes, got {budget_s}, {n_train}, {n_val}")
    skipped: list[str] = []
    epochs = _parent_epochs(costs, TRAIN_SHARE * budget_s, n_train, min_epochs, max_epochs, skipped)
    kept = [c for c in costs if c.name in epochs]
    train_s = sum(epochs[c.name] * n_train / c.train_ips for c in kept)
    vip_s = VIP_SHARE * budget_s + max(0.0, TRAIN_SHARE * budget_s - train_s)
    sens, variants, ft = _vip_plan(kept, vip_s, n_train, n_val, finetune_epochs, max_variants, skipped)
    candidates = [(c, 1 + variants[c.name]) for c in kept]
    per_run = sum(n * c.latency_ms / 1000.0 for c, n in candidates) * threads  # s per run of every candidate
    runs = int(min(max_profile_runs, PROFILE_SHARE * budget_s / max(per_run, 1e-9)))
    if runs < max_profile_runs:
        skipped.append(f"profile: {max(10, runs)} runs per candidate (of {max_profile_runs})")
    runs = max(10, runs)
    plans = [ParentPlan(c.name, round(epochs[c.name], 3), variants[c.name]) for c in kept]
    used_vip = sum(c.vip_layers * sens / c.eval_ips + variants[c.name] * ft * n_train / c.train_ips
                   for c in kept if variants[c.name])
    seconds = {"parents": round(train_s, 1), "vip": round(used_vip, 1), "profile": round(runs * per_run, 1)}
    return BuildPlan(plans, sens, ft, runs, seconds, skipped)
