"""The detector bank builder: a ViP Faster R-CNN family on conveyor scenes -> a bank.

Phases, each resumable from the work directory (a finished step leaves a file and is skipped):
  spec         anchors fitted to training boxes -> spec.json
  parent       Faster R-CNN trained from scratch -> parent/{ckpt.pt, model.safetensors, record.json}
  sensitivity  val mAP@0.5 drop of ViP on each backbone conv alone -> sensitivity.json
  vip          layer groups (least sensitive per MAC saving, as for classifiers), each fine-tuned
               from the parent -> vipNN/...
  evaluate     val and test mAP of every candidate (stored in its record.json)
  profile      batch-1 latency of whole detector and backbone alone, interleaved -> profile.json
  select       ε-Pareto on (p50 latency, val mAP@0.5) -> OUT/{manifest.json, *.safetensors}: the
               frontier's weights ship, the ε-Pareto set (plus the parent) is served
The manifest has the classifier bank's layout with task "detection"; val_accuracy and
test_accuracy hold mAP@0.5 so the bank's selection and loading code applies unchanged.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from ..data.conveyor import ConveyorScenes, box_statistics, coco_dict
from ..jsonfile import write_json
from ..machine import machine_info
from ..models.detector import (
    BackboneCall,
    DetectorCall,
    DetectorSpec,
    backbone_layer_names,
    build_detector,
    fit_anchors,
)
from ..tasks.detection import evaluate_map
from .bank import build_member_module
from .manifest import file_entry
from .pareto import Point, eps_pareto, pareto_front
from .profile import profile_models
from .provenance import save_manifest
from .recipe import DetectorRecipe, to_dict
from .records import InputSpec
from .train_detector import train_detector
from .vip_variants import choose_groups

log = logging.getLogger("vip_perception.bank")
PHASES = ("spec", "parent", "sensitivity", "vip", "evaluate", "profile", "select")
TASK = "detection"


def save_weights(model: nn.Module, path: str) -> None:
    """The model's state dict as safetensors at ``path``, written atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_weights(model: nn.Module, path: str) -> nn.Module:
    """Load ``path`` into ``model`` (strict); returns it in eval mode."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(path), strict=True)
    return model.eval()


def _read(path: str):
    with open(path) as fh:
        return json.load(fh)


class DetectorBankBuilder:
    """Runs ``bank build-detector``'s phases for one recipe over the work directory ``work``.

    ``on_trained(name)`` is called after each candidate is trained and saved (a test hook);
    ``trained`` lists the candidates this builder trained. ``profiler`` has
    ``profile_models``'s signature. ``build`` is merged into the manifest's "build" record.
    """

    def __init__(self, cfg: DetectorRecipe, work: str, out: str, progress: bool = True,
                 build: dict | None = None, on_trained: Callable[[str], None] | None = None,
                 profiler: Callable[..., dict] = profile_models):
        self.cfg, self.work, self.out, self.progress = cfg, work, out, progress
        self.build_info = dict(build or {})
        self.on_trained, self.profiler = on_trained, profiler
        self.trained: list[str] = []
        self.train_scenes = ConveyorScenes("train", cfg.scene)
        self.val_scenes = ConveyorScenes("val", cfg.scene)
        self.test_scenes = ConveyorScenes("test", cfg.scene)
        self._gt: dict[tuple[str, int], dict] = {}

    # -- helpers ------------------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def gt(self, split: str, count: int) -> dict:
        key = (split, count)
        if key not in self._gt:
            self._gt[key] = coco_dict({"val": self.val_scenes, "test": self.test_scenes}[split], count)
        return self._gt[key]

    def score(self, model: nn.Module, split: str, count: int) -> dict:
        scenes = {"val": self.val_scenes, "test": self.test_scenes}[split]
        torch.set_num_threads(self.cfg.parent.threads)
        return evaluate_map(model, scenes, count, self.spec.in_channels, self.gt(split, count))

    def candidates(self) -> list[str]:
        names = ["parent"] + sorted(d for d in os.listdir(self.work) if d.startswith("vip") and
                                    os.path.isfile(self._p(d, "model.safetensors")))
        return [n for n in names if os.path.isfile(self._p(n, "model.safetensors"))]

    def record(self, name: str) -> dict:
        return _read(self._p(name, "record.json"))

    def model(self, name: str) -> nn.Module:
        rec = self.record(name)
        module = build_member_module(rec["spec"], rec["vip_layers"], TASK)
        return load_weights(module, self._p(name, "model.safetensors"))

    # -- phases -------------------------------------------------------------------------
    def run(self, until: str = "select") -> None:
        """Run the phases in PHASES order up to and including ``until``."""
        if until not in PHASES:
            raise ValueError(f"until must be one of {PHASES}, got {until!r}")
        for phase in PHASES:
            getattr(self, f"phase_{phase}")()
            if phase == until:
                break

    def phase_spec(self) -> None:
        path = self._p("spec.json")
        if os.path.isfile(path):
            self.spec = DetectorSpec.from_dict(_read(path))
            return
        c = self.cfg
        stats = box_statistics(self.train_scenes, c.anchor_scenes)
        sizes, ratios = fit_anchors(stats["sizes"], stats["ratios"])
        self.spec = DetectorSpec(**{**c.detector, "image_size": (c.scene.height, c.scene.width),
                                    "anchor_sizes": sizes, "aspect_ratios": ratios})
        write_json(path, self.spec.to_dict())
        log.info("spec: anchors sizes %s ratios %s (from %d boxes)", sizes, ratios, len(stats["sizes"]))

    def _train(self, name: str, model: nn.Module, recipe, vip_layers: list[str], parent: str | None) -> None:
        if os.path.isfile(self._p(name, "model.safetensors")):
            return
        log.info("training %s (vip %s) for %d steps", name, vip_layers, recipe.steps)
        info = train_detector(model, self.train_scenes, recipe, self._p(name), self.spec.in_channels,
                              progress=self.progress, log=log.info)
        save_weights(model, self._p(name, "model.safetensors"))
        write_json(self._p(name, "record.json"), {"name": name, "kind": "vip" if vip_layers else "parent",
                                                   "spec": self.spec.to_dict(), "vip_layers": vip_layers,
                                                   "parent": parent, "train": info})
        self.trained.append(name)
        log.info("%s trained in %.0f s", name, info["seconds"])
        if self.on_trained is not None:
            self.on_trained(name)

    def phase_parent(self) -> None:
        torch.manual_seed(self.cfg.seed)
        self._train("parent", build_detector(self.spec), self.cfg.parent, [], None)

    def phase_sensitivity(self) -> None:
        path = self._p("sensitivity.json")
        if os.path.isfile(path):
            self.sensitivity = _read(path)
            return
        from ..vip import apply_vip, count_macs

        parent, n = self.model("parent"), self.cfg.sensitivity_scenes
        base = self.score(parent, "val", n)["map50"]
        layers = backbone_layer_names(parent)
        drops = {}
        for name in layers:
            drops[name] = base - self.score(apply_vip(parent, [name]), "val", n)["map50"]
            log.info("sensitivity %s: mAP@0.5 drop %.4f", name, drops[name])
        h, w = self.spec.image_size
        per = count_macs(parent.backbone, (1, self.spec.in_channels, h, w)).per_layer
        macs = {name: int(per.get(name[len("backbone."):], 0)) for name in layers}
        self.sensitivity = {"base_map50": base, "scenes": n, "drop": drops, "macs": macs}
        write_json(path, self.sensitivity)

    def phase_vip(self) -> None:
        s = self.sensitivity
        groups = choose_groups(s["drop"], s["macs"], self.cfg.vip_groups, self.cfg.max_vip_layers)
        parent = self.model("parent")
        from ..vip import apply_vip

        for i, layers in enumerate(groups):
            name = f"vip{i + 1:02d}"
            recipe = replace(self.cfg.finetune, seed=self.cfg.seed + 100 + i)
            self._train(name, apply_vip(parent, layers).train(), recipe, layers, "parent")

    def phase_evaluate(self) -> None:
        from ..vip import count_macs

        c = self.cfg
        h, w = self.spec.image_size
        for name in self.candidates():
            rec = self.record(name)
            if "test_map50" in rec:
                continue
            model = self.model(name)
            val, test = self.score(model, "val", c.val_scenes), self.score(model, "test", c.test_scenes)
            rec.update(val_map50=val["map50"], val_map=val["map"], test_map50=test["map50"], test_map=test["map"],
                       backbone_macs=int(count_macs(model.backbone, (1, self.spec.in_channels, h, w)).total),
                       param_bytes=int(sum(p.numel() * p.element_size() for p in model.state_dict().values())))
            write_json(self._p(name, "record.json"), rec)
            log.info("%s: val mAP@0.5 %.4f, test mAP@0.5 %.4f mAP %.4f", name, val["map50"], test["map50"], test["map"])

    def phase_profile(self) -> None:
        path = self._p("profile.json")
        names = self.candidates()
        if os.path.isfile(path) and set(_read(path)["whole"]) == set(names):
            self.profiles = _read(path)
            return
        p, h, w = self.cfg.profile, *self.spec.image_size
        models = {n: self.model(n) for n in names}
        shape = (1, self.spec.in_channels, h, w)
        kw = {"threads": p.threads, "runs": p.runs, "warmup": p.warmup, "rounds": p.rounds, "progress": self.progress}
        whole = self.profiler({n: DetectorCall(m) for n, m in models.items()}, shape, **kw)
        backbone = self.profiler({n: BackboneCall(m) for n, m in models.items()}, shape, **kw)
        self.profiles = {
            "whole": {n: {str(t): v.to_dict() for t, v in d.items()} for n, d in whole.items()},
            "backbone": {n: {str(t): v.to_dict() for t, v in d.items()} for n, d in backbone.items()},
            "machine": machine_info(),
        }
        write_json(path, self.profiles)

    def phase_select(self) -> None:
        c = self.cfg
        names = self.candidates()
        recs = {n: self.record(n) for n in names}
        t, q = c.profile.threads[0], "p50"
        pts = [Point(self.profiles["whole"][n][str(t)][q], recs[n]["val_map50"]) for n in names]
        frontier = [names[i] for i in pareto_front(pts)]
        chosen = [names[i] for i in eps_pareto(pts, c.epsilon, keep_best=True)]
        if "parent" not in chosen:  # the parent is every ViP member's reference: always served
            chosen.append("parent")
        os.makedirs(self.out, exist_ok=True)
        members, files = [], {}
        for n in frontier + [n for n in chosen if n not in frontier]:  # frontier weights ship; `chosen` is served
            fname = f"{n}.safetensors"
            shutil.copyfile(self._p(n, "model.safetensors"), os.path.join(self.out, fname))
            files[fname] = file_entry(os.path.join(self.out, fname))
            members.append({**self._member_entry(n, recs[n], fname), "served": n in chosen})
        selection = {"threads": t, "quantile": q, "epsilon": c.epsilon, "keep_best": True, "frontier": frontier,
                     "compact": chosen, "metric": "val_map50"}
        save_manifest(self.out, self._manifest(recs, members, files, selection))
        log.info("bank %s: members %s (frontier %s)", self.out, chosen, frontier)

    def _member_entry(self, name: str, rec: dict, fname: str) -> dict:
        """A manifest member: accuracy fields hold mAP@0.5, macs the backbone's."""
        return {
            "name": name, "kind": rec["kind"], "file": fname, "spec": rec["spec"], "vip_layers": rec["vip_layers"],
            "parent": rec["parent"], "val_accuracy": rec["val_map50"], "test_accuracy": rec["test_map50"],
            "macs": rec["backbone_macs"], "param_bytes": rec["param_bytes"], "train": rec["train"],
            "latency": self.profiles["whole"][name],
            "metrics": {"val_map50": rec["val_map50"], "val_map": rec["val_map"], "test_map50": rec["test_map50"],
                        "test_map": rec["test_map"], "backbone_latency": self.profiles["backbone"][name]},
        }

    def _manifest(self, recs: dict, members: list[dict], files: dict, selection: dict) -> dict:
        h, w = self.spec.image_size
        keys = ("vip_layers", "val_map50", "val_map", "test_map50", "test_map", "backbone_macs")
        candidates = {n: {k: r[k] for k in keys} | {"latency": self.profiles["whole"][n],
                                                   "backbone_latency": self.profiles["backbone"][n]}
                      for n, r in recs.items()}
        return {
            "name": self.cfg.name, "task": TASK, "class_names": list(self.train_scenes.class_names),
            # mean 0 / std 1: preprocess yields [0, 1] pixels; the detector normalises inside (spec.image_mean/std)
            "input": InputSpec(h, w, self.spec.in_channels, (0.0,) * self.spec.in_channels,
                               (1.0,) * self.spec.in_channels, False).to_dict(),
            "machine": self.profiles["machine"],
            "selection": selection,
            "build": {**self.build_info, "recipe": to_dict(self.cfg), "sensitivity": self.sensitivity,
                      "candidates": candidates},
            "members": members,
            "files": files,
        }
