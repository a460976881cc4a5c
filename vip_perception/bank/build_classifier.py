"""The classifier bank builder: the phases of ``bank build`` over a resumable work directory.

Phases (each resumable: a finished candidate is a sub-directory of WORK/candidates with its
record.json and float16 safetensors weights, and is skipped on a re-run):
  base     seeded samples of the recipe's search space, trained briefly
  parents  a few models trained properly (the sources of ViP variants)
  vip      per-layer sensitivity of each parent, then ViP layer groups fine-tuned from it
  profile  batch-1 latency of every candidate, interleaved, at each thread count
  select   Pareto front (weights shipped) and ε-Pareto compact set (served)
           -> OUT/{manifest.json, *.safetensors, candidates.json}
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..jsonfile import write_json
from ..machine import has_native_bf16, machine_info
from ..models import ClassifierSpec, TorchvisionSpec, build_classifier, build_model, spec_from_dict
from .bank import build_member_module, inference_module
from .candidates import sample_specs
from .manifest import CANDIDATES, SCHEMA_VERSION, file_entry
from .pareto import Point, eps_pareto, hypervolume, pareto_front, served_threads, unpaid_vip, vip_unpaid_threads
from .profile import profile_models
from .provenance import portable_path, save_manifest
from .recipe import ClassifierRecipe, TrainRecipe, to_dict
from .records import CandidateRecord, InputSpec
from .train_classifier import (
    StationImages,
    StreamImages,
    TensorImages,
    TrainConfig,
    TrainImages,
    evaluate,
    normalise,
    normalise_grey,
    train,
)

log = logging.getLogger("vip_perception.bank")
PHASES = ("base", "parents", "vip", "profile", "select")


@dataclass
class Splits:
    """Training batches, normalised float val/test tensors (N, C, H, W) (or streams of them, for
    data too large to hold) and int64 labels."""

    train: TrainImages
    x_val: torch.Tensor | StreamImages
    y_val: torch.Tensor
    x_test: torch.Tensor | StreamImages
    y_test: torch.Tensor
    class_names: list[str]


def _station_splits(cfg: ClassifierRecipe) -> Splits:
    """Fashion-MNIST garments rendered at the station: training batches rendered per step with
    the camera's conditions; validation and test rendered once, nominal (what the camera shows)."""
    from ..data import load_fashion_mnist, train_val_split
    from ..data.station_render import render_station, station_augment

    d = cfg.data
    if d.height != d.width:
        raise ValueError(f"data.kind 'station' renders square crops: height {d.height} != width {d.width}")
    try:
        augment = station_augment(d.station)
    except ValueError as exc:
        raise ValueError(f"data.station: {exc}") from exc
    full, test = load_fashion_mnist("train", d.root or None), load_fashion_mnist("test", d.root or None)
    rng = np.random.default_rng(cfg.seed)
    if d.train_limit and d.train_limit < len(full):
        full = full.subset(np.sort(rng.permutation(len(full))[: d.train_limit]))
    if d.test_limit and d.test_limit < len(test):
        test = test.subset(np.sort(rng.permutation(len(test))[: d.test_limit]))
    tr, va = train_val_split(len(full), d.val_size, cfg.seed)
    items = torch.as_tensor(full.images[..., 0])  # (N, 28, 28) uint8

    def nominal(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([normalise_grey(render_station(x[i:i + 1000], d.height), d.mean, d.std, d.invert)
                          for i in range(0, len(x), 1000)])

    labels = torch.as_tensor(full.labels)
    train_images = StationImages(items[tr], labels[tr], d.height, d.mean, d.std, d.invert, augment)
    return Splits(train_images, nominal(items[va]), labels[va], nominal(torch.as_tensor(test.images[..., 0])),
                  torch.as_tensor(test.labels), full.class_names)


HELD_MAX_BYTES = 64 << 20  # a val/test split up to this size (float32 at the input size) is decoded once


def _held(stream: StreamImages) -> tuple[torch.Tensor | StreamImages, torch.Tensor]:
    """A val/test split as tensors when small enough to hold, else the stream; with its labels."""
    if len(stream) * stream.channels * stream.height * stream.width * 4 > HELD_MAX_BYTES:
        return stream, stream.labels
    n, xs, ys = len(stream), [], []
    for x, y in stream.batches([list(range(i, min(n, i + 256))) for i in range(0, n, 256)]):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def _user_data_splits(cfg: ClassifierRecipe) -> Splits:
    """A directory detected by ``data.user_data``: training streamed from disk; val and test
    held as tensors when small (``HELD_MAX_BYTES``), streamed otherwise. Without a test split,
    the val split is reported as test too (logged)."""
    from ..data.user_data import detect_dataset, open_split

    d = cfg.data
    info = detect_dataset(d.root, "classification", seed=cfg.seed, val_fraction=d.val_fraction,
                          test_fraction=d.test_fraction)

    def stream(split: str, limit: int = 0) -> StreamImages:
        ds = open_split(info, split, cfg.seed)
        s = StreamImages(ds, ds.labels, d.height, d.width, d.channels, d.mean, d.std, d.invert, d.workers)
        if limit and limit < len(s):
            s = s[np.sort(np.random.default_rng(cfg.seed).permutation(len(s))[:limit])]
        return s

    train_images, (x_val, y_val) = stream("train", d.train_limit), _held(stream("val"))
    if "test" in info.splits:
        x_test, y_test = _held(stream("test", d.test_limit))
    else:
        log.info("data: %s has no test split; test accuracy is reported on val", d.root)
        x_test, y_test = x_val, y_val
    return Splits(train_images, x_val, y_val, x_test, y_test, list(info.class_names))


def load_splits(cfg: ClassifierRecipe) -> Splits:
    """Train/val from the training split (seeded), test only for reporting.

    Fashion-MNIST comes from ``cfg.data.root`` ("" = ``fashion_mnist.default_root()``). Raises
    ValueError naming the recipe field when the data do not match the recipe.
    """
    from ..data import load_fashion_mnist, load_image_folder, train_val_split

    d = cfg.data
    if d.kind == "station":
        return _station_splits(cfg)
    if d.kind == "user_data":
        return _user_data_splits(cfg)
    rng = np.random.default_rng(cfg.seed)
    if d.kind == "fashion_mnist":
        full, test = load_fashion_mnist("train", d.root or None), load_fashion_mnist("test", d.root or None)
    elif d.kind == "image_folder":
        full = load_image_folder(d.root, d.height, d.width, d.channels)
        if d.test_root:
            test = load_image_folder(d.test_root, d.height, d.width, d.channels)
            if test.class_names != full.class_names:
                raise ValueError(f"{d.test_root}: classes {test.class_names} differ from {d.root}: {full.class_names}")
        else:
            if not 0 < d.test_size < len(full):
                raise ValueError(f"data.test_size must be in (0, {len(full)}) without data.test_root, "
                                 f"got {d.test_size}")
            rest, held = train_val_split(len(full), d.test_size, cfg.seed + 1)
            full, test = full.subset(rest), full.subset(held)
    else:
        raise ValueError(f"data.kind must be 'fashion_mnist', 'station', 'image_folder' or 'user_data', "
                         f"got {d.kind!r}")
    if d.train_limit and d.train_limit < len(full):
        full = full.subset(np.sort(rng.permutation(len(full))[: d.train_limit]))
    if d.test_limit and d.test_limit < len(test):
        test = test.subset(np.sort(rng.permutation(len(test))[: d.test_limit]))
    tr, va = train_val_split(len(full), d.val_size, cfg.seed)
    if full.images.shape[1:] != (d.height, d.width, d.channels):
        raise ValueError(f"data images are {full.images.shape[1:]}, config says {(d.height, d.width, d.channels)}")

    def norm(images):
        return normalise(images, d.mean, d.std, d.invert)

    return Splits(TensorImages(norm(full.images[tr]), torch.as_tensor(full.labels[tr])), norm(full.images[va]),
                  torch.as_tensor(full.labels[va]), norm(test.images), torch.as_tensor(test.labels), full.class_names)


def _seed_of(base: int, name: str) -> int:
    """A per-candidate seed: the same name trains the same way in any order or process."""
    return (base * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


def round_to_storage(model: nn.Module) -> None:
    """Round float weights to float16 values, as stored: the evaluated model is the shipped one."""
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


class ClassifierBankBuilder:
    """Runs ``bank build``'s phases for one recipe over the work directory ``work``.

    ``on_trained(name)`` is called after each candidate is trained and saved (a test hook: a
    build interrupted there resumes without retraining it); ``trained`` lists the candidates
    this builder trained. ``profiler`` has ``profile_models``'s signature (tests pass a
    deterministic one). ``build`` is merged into the manifest's "build" record.
    """

    def __init__(self, cfg: ClassifierRecipe, work: str, out: str, progress: bool = True,
                 build: dict | None = None, on_trained: Callable[[str], None] | None = None,
                 profiler: Callable[..., dict] = profile_models):
        self.cfg, self.work, self.out, self.progress = cfg, work, out, progress
        self.build_info = dict(build or {})
        self.on_trained, self.profiler = on_trained, profiler
        self.trained: list[str] = []
        self.cand_dir = os.path.join(work, "candidates")
        os.makedirs(self.cand_dir, exist_ok=True)
        self.bf16 = cfg.bf16 == "on" or (cfg.bf16 == "auto" and has_native_bf16())
        self._splits: Splits | None = None
        self.reverse = False  # visit ViP groups last-first (a second process on the same work dir)
        self.deadline: float | None = None  # time.time() after which no further ViP variant starts
        self.skipped: list[str] = []  # what the deadline left out
        d = cfg.data
        self.input_shape = (1, d.channels, d.height, d.width)

    # ---- storage of candidates -------------------------------------------------------------
    def _dir(self, name: str) -> str:
        return os.path.join(self.cand_dir, name)

    def claim(self, name: str) -> bool:
        """Take a candidate for this process (parallel builds share a work dir).

        False when another live process holds it; a claim of a dead process is taken over.
        """
        d = self._dir(name)
        os.makedirs(d, exist_ok=True)
        lock = os.path.join(d, "claim.pid")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(lock) as fh:
                    pid = int(fh.read().strip() or 0)
                if pid and pid != os.getpid():
                    os.kill(pid, 0)
                    return False  # alive: someone else trains it
            except (ValueError, ProcessLookupError, PermissionError, OSError):
                pass  # stale claim of a process that died
            with open(lock, "w") as fh:
                fh.write(str(os.getpid()))
            return True
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return True

    def done(self, name: str) -> bool:
        """The candidate's record and weights are both in the work directory."""
        d = self._dir(name)
        return os.path.isfile(os.path.join(d, "record.json")) and os.path.isfile(os.path.join(d, "weights.safetensors"))

    def save(self, rec: CandidateRecord, model: nn.Module) -> None:
        """Weights (float16, atomically) then the record, then release the claim."""
        from safetensors.torch import save_file

        d = self._dir(rec.name)
        os.makedirs(d, exist_ok=True)
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
        save_file(state, os.path.join(d, "weights.safetensors.tmp"))
        os.replace(os.path.join(d, "weights.safetensors.tmp"), os.path.join(d, "weights.safetensors"))
        write_json(os.path.join(d, "record.json"), rec.to_dict())
        try:
            os.remove(os.path.join(d, "claim.pid"))
        except FileNotFoundError:
            pass

    def record(self, name: str) -> CandidateRecord:
        with open(os.path.join(self._dir(name), "record.json")) as fh:
            return CandidateRecord.from_dict(json.load(fh))

    def load_model(self, rec: CandidateRecord) -> nn.Module:
        model = build_member_module(rec.spec, rec.vip_layers)
        _load_half(model, os.path.join(self._dir(rec.name), "weights.safetensors"))
        return model

    def all_records(self) -> list[CandidateRecord]:
        names = sorted(n for n in os.listdir(self.cand_dir) if self.done(n))
        return [self.record(n) for n in names]

    # ---- data and training ------------------------------------------------------------------
    @property
    def splits(self) -> Splits:
        if self._splits is None:
            t0 = time.time()
            self._splits = load_splits(self.cfg)
            s = self._splits
            log.info("data: train %d, val %d, test %d (%.1f s)", len(s.train), len(s.y_val), len(s.y_test),
                     time.time() - t0)
        return self._splits

    def _train_config(self, recipe: TrainRecipe, macs: int, seed: int) -> TrainConfig:
        from ..data.station_render import station_augment

        station = None
        if recipe.station:
            if not isinstance(self.splits.train, StationImages):
                raise ValueError("train.station is for data.kind 'station' only")
            station = station_augment(recipe.station, self.splits.train.augment)
        n = len(self.splits.train)
        samples = recipe.epochs * n
        if recipe.mac_budget > 0:
            samples = min(samples, max(recipe.min_samples, recipe.mac_budget / max(1, macs)))
        if recipe.max_samples:
            samples = min(samples, recipe.max_samples)
        return TrainConfig(samples=max(recipe.batch_size, int(samples)), batch_size=recipe.batch_size,
                           optimizer=recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, schedule=recipe.schedule,
                           label_smoothing=recipe.label_smoothing, augment=recipe.augment, bf16=self.bf16, seed=seed,
                           low_res_fraction=recipe.low_res_fraction, station=station)

    def _fit(self, name: str, kind: str, spec: ClassifierSpec, model: nn.Module, recipe: TrainRecipe,
             vip_layers=(), parent=None) -> CandidateRecord:
        from ..vip import count_macs

        if recipe.low_res_fraction > 0 and getattr(spec, "head", "gap") != "gap":  # torchvision: adaptive pooling
            raise ValueError(f"{name}: train.low_res_fraction needs a resolution-free head (head: gap), "
                             f"got head {spec.head!r}")
        seed = _seed_of(self.cfg.seed, name)
        macs = int(count_macs(model, self.input_shape).total)
        tc = self._train_config(recipe, macs, seed)
        s = self.splits
        t0 = time.time()
        loss = train(model, s.train, tc, desc=name, progress=self.progress)
        seconds = time.time() - t0
        round_to_storage(model)
        rec = CandidateRecord(
            name=name, kind=kind, spec=spec.to_dict(), vip_layers=list(vip_layers), parent=parent,
            val_accuracy=evaluate(model, s.x_val, s.y_val), test_accuracy=evaluate(model, s.x_test, s.y_test),
            macs=macs, param_bytes=int(sum(p.numel() * p.element_size() for p in model.parameters())),
            train={"samples": tc.samples, "seconds": round(seconds, 1), "final_loss": round(loss, 4),
                   "optimizer": tc.optimizer, "lr": tc.lr, "schedule": tc.schedule, "augment": tc.augment,
                   "bf16": tc.bf16, "low_res_fraction": tc.low_res_fraction,
                   **({"station": recipe.station} if recipe.station else {})},
        )
        self.save(rec, model)
        self.trained.append(name)
        if self.on_trained is not None:
            self.on_trained(name)
        log.info("%-40s %-6s macs %7.2fM val %.4f test %.4f (%d samples, %.0f s)", name, kind, macs / 1e6,
                 rec.val_accuracy, rec.test_accuracy, tc.samples, seconds)
        return rec

    # ---- phases ------------------------------------------------------------------------------
    def run(self, phases: list[str], reprofile: bool = False) -> None:
        """Run the named phases in PHASES order (``reprofile``: profile even if already profiled)."""
        torch.set_num_threads(max(1, self.cfg.threads))
        for phase in PHASES:
            if phase in phases:
                t0 = time.time()
                log.info("phase %s ...", phase)
                if phase == "profile":
                    self.phase_profile(force=reprofile)
                else:
                    getattr(self, f"phase_{phase}")()
                log.info("phase %s done in %.1f s", phase, time.time() - t0)

    def phase_base(self) -> None:
        d = self.cfg.data
        num_classes = len(self.splits.class_names)
        specs = sample_specs(self.cfg.search, self.cfg.seed, d.channels, (d.height, d.width), num_classes)
        for i, spec in enumerate(specs):
            name = f"b{i:03d}"
            if self.done(name) or not self.claim(name):
                continue
            torch.manual_seed(_seed_of(self.cfg.seed, name))
            self._fit(name, "base", spec, build_model(spec), self.cfg.search.train)

    def _parent_spec(self, p) -> ClassifierSpec:
        d = self.cfg.data
        return spec_from_dict({"in_channels": d.channels, "input_size": [d.height, d.width],
                               "num_classes": len(self.splits.class_names), **p.spec})

    def _parent_model(self, p, spec: ClassifierSpec) -> nn.Module:
        """The parent's initial model: fresh, or from its local ``weights`` file (torchvision
        archs; a head for other classes is replaced and trained, and the log says so)."""
        from ..models.torchvision_arch import fit_weights, read_weights

        model = build_classifier(spec)
        if p.weights:
            if not isinstance(spec, TorchvisionSpec):
                raise ValueError(f"parent {p.name}: weights {p.weights} need a torchvision arch, got {p.spec}")
            for note in fit_weights(model, spec, read_weights(p.weights), p.weights):
                log.warning("parent %s: %s", p.name, note)
            log.info("parent %s: starts from %s", p.name, p.weights)
        return model

    def phase_parents(self) -> None:
        for p in self.cfg.parents:
            if self.done(p.name):
                if self._needs_refine(p) and self.claim(p.name):
                    self._refine(p)
                continue
            if not self.claim(p.name):
                continue
            spec = self._parent_spec(p)
            torch.manual_seed(_seed_of(self.cfg.seed, p.name))
            self._fit(p.name, "parent", spec, self._parent_model(p, spec), p.train)
            if p.refine is not None:
                self.claim(p.name)
                self._refine(p)

    @staticmethod
    def _refine_stages(p) -> list:
        """``p.refine`` as a list of stages (TrainRecipe), in order."""
        if p.refine is None:
            return []
        return list(p.refine) if isinstance(p.refine, list) else [p.refine]

    @staticmethod
    def _refine_records(rec: CandidateRecord) -> list[dict]:
        """The refine stages a record holds: ``train["refine"]`` is one stage's dict, or a list."""
        done = rec.train.get("refine")
        return [] if done is None else list(done) if isinstance(done, list) else [done]

    def _needs_refine(self, p) -> bool:
        return len(self._refine_records(self.record(p.name))) < len(self._refine_stages(p))

    def _refine(self, p) -> CandidateRecord:
        """The parent's later stages: continue training the saved model with each stage of
        ``p.refine`` not yet recorded, saving after each (so an interruption loses one stage at
        most). Every stage draws its data order from the same seed, ``<name>.refine``."""
        rec = self.record(p.name)
        stages = self._refine_stages(p)
        pending = range(len(self._refine_records(rec)), len(stages))
        if pending:
            self._drop_variants(p.name)
        model = self.load_model(rec)
        s = self.splits
        for k in pending:
            stage = stages[k]
            self.claim(p.name)  # ``save`` released it after the previous stage
            tc = self._train_config(stage, rec.macs, _seed_of(self.cfg.seed, p.name + ".refine"))
            t0 = time.time()
            loss = train(model, s.train, tc, desc=f"{p.name} refine {k + 1}/{len(stages)}", progress=self.progress)
            round_to_storage(model)
            before = rec.val_accuracy
            rec.val_accuracy, rec.test_accuracy = evaluate(model, s.x_val, s.y_val), evaluate(model, s.x_test, s.y_test)
            entry = {"samples": tc.samples, "seconds": round(time.time() - t0, 1), "final_loss": round(loss, 4),
                     "optimizer": tc.optimizer, "lr": tc.lr, "schedule": tc.schedule, "station": stage.station,
                     "val_accuracy_before": before}
            done = self._refine_records(rec) + [entry]
            rec.train["refine"] = done[0] if len(done) == 1 else done
            self.save(rec, model)
            log.info("%-40s refine %d/%d val %.4f -> %.4f test %.4f (%d samples, %.0f s)", p.name, k + 1,
                     len(stages), before, rec.val_accuracy, rec.test_accuracy, tc.samples, time.time() - t0)
        return rec

    def _drop_variants(self, parent: str) -> None:
        """Delete ``parent``'s ViP variants and its layer sensitivity: they describe the parent
        before its next training stage, so they are derived again from the new weights."""
        for rec in self.all_records():
            if rec.parent == parent:
                log.warning("%s: parent %s trains further; its variant is derived again", rec.name, parent)
                shutil.rmtree(self._dir(rec.name))
        try:
            os.remove(os.path.join(self._dir(parent), "sensitivity.json"))
        except FileNotFoundError:
            pass

    def phase_vip(self) -> None:
        from ..vip import apply_vip, count_macs, vip_layer_names
        from .vip_variants import choose_groups, layer_sensitivity

        s, vc = self.splits, self.cfg.vip
        n_sens = min(vc.sensitivity_samples, len(s.y_val))
        for p in self.cfg.parents:
            count = vc.variants_per_parent if p.vip_variants < 0 else p.vip_variants
            if count == 0:
                continue
            if not self.done(p.name) or self._needs_refine(p):
                log.warning("vip: parent %s not trained (or not refined); skipped", p.name)
                continue
            prec = self.record(p.name)
            parent = self.load_model(prec)
            sens_path = os.path.join(self._dir(p.name), "sensitivity.json")
            if os.path.isfile(sens_path):
                with open(sens_path) as fh:
                    sens = json.load(fh)
            else:
                sens = layer_sensitivity(parent, vip_layer_names(parent, self.input_shape),
                                         lambda m: evaluate(m, s.x_val[:n_sens], s.y_val[:n_sens]))
                write_json(sens_path, sens)
            log.info("vip: %s sensitivity (val drop, %d images): %s", p.name, n_sens,
                     ", ".join(f"{k}={v:+.4f}" for k, v in sens.items()))
            per_layer = count_macs(parent, self.input_shape).per_layer
            layer_macs = {n: int(per_layer.get(n, 0) * 3 // 4) for n in sens}  # ViP saves ~3/4 of a layer
            groups = choose_groups(sens, layer_macs, count)
            spec = spec_from_dict(prec.spec)
            order = list(enumerate(groups))
            for gi, layers in (order[::-1] if self.reverse else order):
                name = f"{p.name}.vip{gi:02d}"
                if self.done(name):
                    continue
                if self.deadline is not None and time.time() > self.deadline:
                    self.skipped.append(f"{name}: the ViP time of the budget was spent")
                    log.warning("vip: %s skipped: the ViP time of the budget was spent", name)
                    continue
                if not self.claim(name):
                    continue
                torch.manual_seed(_seed_of(self.cfg.seed, name))
                model = apply_vip(parent, layers)
                self._fit(name, "vip", spec, model, vc.finetune, vip_layers=layers, parent=p.name)

    def phase_profile(self, force: bool = False) -> None:
        recs = self.all_records()
        if not recs:
            raise RuntimeError(f"{self.cand_dir}: no trained candidates to profile")
        pc = self.cfg.profile
        if not force and all(set(pc.threads) <= set(r.latency) for r in recs):
            log.info("profile: all %d candidates already profiled (use --reprofile to redo)", len(recs))
            return
        models = {r.name: inference_module(self.load_model(r)) for r in recs}  # as members run
        log.info("profile: %d candidates x threads %s x %d runs (warm-up %d)", len(recs), pc.threads, pc.runs,
                 pc.warmup)
        prof = self.profiler(models, self.input_shape, pc.threads, pc.runs, pc.warmup, pc.rounds,
                              seed=self.cfg.seed, progress=self.progress)
        for r in recs:
            r.latency = prof[r.name]
            write_json(os.path.join(self._dir(r.name), "record.json"), r.to_dict())
        write_json(os.path.join(self.work, "machine.json"), machine_info())

    def phase_select(self) -> None:
        recs = [r for r in self.all_records() if r.latency]
        if not recs:
            raise RuntimeError(f"{self.cand_dir}: no profiled candidates (run the profile phase)")
        machine_path = os.path.join(self.work, "machine.json")
        if os.path.isfile(machine_path):
            with open(machine_path) as fh:
                machine = json.load(fh)
        else:
            machine = machine_info()
        build = {**self.build_info, "seed": self.cfg.seed, "recipe": to_dict(self.cfg)}
        build["recipe"]["data"]["root"] = portable_path(self.cfg.data.root)
        build["recipe"]["data"]["test_root"] = portable_path(self.cfg.data.test_root)
        for p in build["recipe"]["parents"]:
            p["weights"] = portable_path(p["weights"])
        write_bank(self.out, recs, self.cfg, self.splits.class_names, machine,
                   weights_of=lambda r: os.path.join(self._dir(r.name), "weights.safetensors"), build=build)


def _load_half(model: nn.Module, path: str) -> nn.Module:
    """Work-dir weights are float16 (as shipped); the module runs in float32."""
    from safetensors.torch import load_file

    state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(path).items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def selection(recs: list[CandidateRecord], threads: int, quantile: str, epsilon: float, keep_best: bool,
              hv_accuracy_ref: float, min_accuracy: float = 0.0, vip_min_speedup: float = 1.0,
              vip_max_val_drop: float = 1.0, latency_tie: float = 0.0) -> dict:
    """Frontier, compact set and hypervolumes (with and without ViP variants) of ``recs``.

    Only candidates with validation accuracy >= ``min_accuracy`` are eligible, and ViP variants
    only when at least ``vip_min_speedup`` x faster than their parent (p50) at ``threads`` and
    at most ``vip_max_val_drop`` below it in validation accuracy (``pareto.unpaid_vip``); a
    compact-set variant that is not that much faster at another profiled thread count is served
    only at the counts where it is (``served_threads``: {name: counts}). ``latency_tie``:
    members within that fraction of a more accurate one's latency count as no faster
    (``pareto.eps_pareto``). Raises ValueError when none is.
    """
    names, parents = [r.name for r in recs], [r.parent if r.kind == "vip" else None for r in recs]
    p50 = [{t: p.quantile("p50") for t, p in r.latency.items()} for r in recs]
    unpaid = unpaid_vip(names, parents, p50, vip_min_speedup, [r.val_accuracy for r in recs], vip_max_val_drop,
                        at_threads=threads)
    kept = [i for i, r in enumerate(recs) if r.val_accuracy >= min_accuracy and i not in unpaid]
    recs = [recs[i] for i in kept]
    if not recs:
        raise ValueError(f"no candidate reaches select.min_accuracy={min_accuracy}")
    pts = [Point(r.quantile_ms(threads, quantile), r.val_accuracy) for r in recs]
    front = pareto_front(pts)
    compact = eps_pareto(pts, epsilon, keep_best=keep_best, latency_tie=latency_tie)
    ref = Point(1.05 * max(p.latency for p in pts), hv_accuracy_ref)
    no_vip = [p for p, r in zip(pts, recs) if r.kind != "vip"]
    hv_all, hv_no = hypervolume(pts, ref), hypervolume(no_vip, ref)
    # The same in log10(latency): latencies span orders of magnitude, and in linear ms the slow
    # end's outliers dominate the area; in log space every doubling of speed counts the same.

    def lg(ps: list[Point]) -> list[Point]:
        return [Point(math.log10(p.latency), p.accuracy) for p in ps if p.latency > 0]

    lref = Point(math.log10(ref.latency), ref.accuracy)
    lhv_all, lhv_no = hypervolume(lg(pts), lref), hypervolume(lg(no_vip), lref)
    return {
        "threads": threads, "quantile": quantile, "epsilon": epsilon, "keep_best": keep_best,
        "min_accuracy": min_accuracy, "vip_min_speedup": vip_min_speedup, "vip_max_val_drop": vip_max_val_drop,
        "latency_tie": latency_tie,
        "eligible": len(recs),
        "frontier": [recs[i].name for i in front], "compact": [recs[i].name for i in compact],
        "served_threads": {names[i]: ts for i, ts in sorted(served_threads(
            p50, vip_unpaid_threads(names, parents, p50, vip_min_speedup), [kept[i] for i in compact]).items())},
        "hypervolume": {
            "reference": {"latency_ms": ref.latency, "val_accuracy": ref.accuracy},
            "units": "ms x accuracy fraction, over (latency quantile, val accuracy)",
            "with_vip": hv_all, "without_vip": hv_no,
            "gain_fraction": (hv_all - hv_no) / hv_no if hv_no > 0 else None,
            "log10_latency": {"with_vip": lhv_all, "without_vip": lhv_no,
                              "gain_fraction": (lhv_all - lhv_no) / lhv_no if lhv_no > 0 else None,
                              "units": "log10(ms) x accuracy fraction, same reference"},
            "vip_on_frontier": sum(1 for i in front if recs[i].kind == "vip"),
        },
    }


def write_bank(out: str, recs: list[CandidateRecord], cfg: ClassifierRecipe, class_names: list[str], machine: dict,
               weights_of, build: dict) -> dict:
    """Select members and write OUT: <member>.safetensors, candidates.json, manifest.json (last).

    Every Pareto-frontier candidate ships its weights as a manifest member, and so does the
    parent of every frontier ViP variant; those of the ε-Pareto compact set are marked
    ``served``, the others are frontier-only (loaded for ``bank profile``, which re-selects the
    served set on the machine it runs on).

    ``weights_of(record)`` is the path of a candidate's weights. Returns the manifest; raises
    BankError when it fails the schema.
    """
    sc = cfg.select
    sel = selection(recs, sc.threads, sc.quantile, sc.epsilon, sc.keep_best, sc.hv_accuracy_ref, sc.min_accuracy,
                    sc.vip_min_speedup, sc.vip_max_val_drop, sc.latency_tie)
    by_name = {r.name: r for r in recs}
    members = [by_name[n] for n in sel["frontier"]]  # the frontier's weights ship; the compact set is served
    # and the parent of every frontier ViP variant, so `bank profile` can check on any machine
    # that the variant still pays (select.vip_min_speedup) against a parent measured there too
    parents = {m.parent for m in members if m.kind == "vip" and m.parent in by_name} - set(sel["frontier"])
    members += [by_name[n] for n in sorted(parents)]
    served = set(sel["compact"])
    os.makedirs(out, exist_ok=True)
    keep = {f"{m.name}.safetensors" for m in members}
    for f in os.listdir(out):  # stale member weights of an earlier build
        if f.endswith(".safetensors") and f not in keep:
            os.remove(os.path.join(out, f))
    files = {}
    for m in members:
        dst = os.path.join(out, f"{m.name}.safetensors")
        shutil.copyfile(weights_of(m), dst)
        files[f"{m.name}.safetensors"] = file_entry(dst)
    write_json(os.path.join(out, CANDIDATES), {"schema_version": SCHEMA_VERSION,
                                               "candidates": [r.to_dict() for r in sorted(recs, key=lambda r: r.name)]})
    files[CANDIDATES] = file_entry(os.path.join(out, CANDIDATES))
    d = cfg.data
    manifest = {
        "name": cfg.name, "task": "classification", "class_names": class_names,
        "input": InputSpec(d.height, d.width, d.channels, tuple(d.mean), tuple(d.std), d.invert).to_dict(),
        "machine": machine, "selection": sel, "build": build,
        "members": [{**m.to_dict(), "file": f"{m.name}.safetensors", "served": m.name in served,
                     **({"served_threads": sel["served_threads"][m.name]} if m.name in sel["served_threads"] else {})}
                    for m in members],
        "files": files,
    }
    manifest = save_manifest(out, manifest)
    log.info("select: %d candidates, frontier %d, compact %d (ε=%.4f): %s", len(recs), len(sel["frontier"]),
             len(members), sc.epsilon, ", ".join(sel["compact"]))
    return manifest
