"""The detector bank builder: a ViP detector family on conveyor scenes or a COCO directory -> a bank.

The parent is the project's VGG Faster R-CNN (``models.detector``, anchors fitted to the data)
or a torchvision detector by name (``recipe.arch``, ``models.torchvision_detector``), trained
from scratch or from a local checkpoint (``recipe.weights``: a class head of another size is
replaced and trained, and the build log and record say so). Data come through one
``bank.detection_data`` source per split.

Phases, each resumable from the work directory (a finished step leaves a file and is skipped):
  spec         the architecture record (anchors fitted to training boxes) -> spec.json
  parent       trained from scratch or the checkpoint -> parent/{ckpt.pt, model.safetensors, record.json}
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

from ..data.conveyor import ConveyorScenes
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
from ..models.torchvision_detector import TorchvisionDetectorSpec, backbone_vip_layers, fit_detector_weights
from ..tasks.detection import coco_map, predict_images
from .bank import build_member_module
from .detection_data import CocoSource, SceneSource
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
        self._sources: dict[str, CocoSource | SceneSource] = {}
        self._gt: dict[tuple, dict] = {}
        self.info = None
        if cfg.data:
            from ..data.user_data import detect_dataset

            self.info = detect_dataset(cfg.data, "detection", seed=cfg.seed, val_fraction=0.15, test_fraction=0.15)
            self.class_names = list(self.info.class_names)
        else:
            self.class_names = list(ConveyorScenes("train", cfg.scene).class_names)
        self.image_size = tuple(cfg.input_size) if cfg.input_size else (cfg.scene.height, cfg.scene.width)

    # -- helpers ------------------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    @property
    def channels(self) -> int:
        """Input channels: 3 (RGB) for torchvision detectors, the spec's for the project's."""
        return 3 if self.cfg.arch else DetectorSpec(**self.cfg.detector).in_channels

    def source(self, split: str) -> CocoSource | SceneSource:
        """The split's images at the input size (a COCO set without a test split reports on val)."""
        if split not in self._sources:
            c = self.cfg
            if self.info is not None:
                have = split if split in self.info.splits else "val"
                if have != split:
                    log.warning("data %s has no %s split: %s figures are measured on val", c.data, split, split)
                self._sources[split] = CocoSource(self.info, have, self.image_size, self.channels, c.seed)
            else:
                count = {"train": max(c.parent.scenes, c.finetune.scenes, c.anchor_scenes), "val": c.val_scenes,
                         "test": c.test_scenes}[split]
                self._sources[split] = SceneSource(ConveyorScenes(split, c.scene), count, self.channels)
        return self._sources[split]

    def score(self, model: nn.Module, split: str, count: int) -> dict:
        """COCO mAP ({"map", "map50"}) of ``model`` on the split's first ``count`` images."""
        torch.set_num_threads(self.cfg.parent.threads)
        src, ids = self.source(split), []

        def items():
            for x, image_id, scale in src.eval_items(count):
                ids.append(image_id)
                yield x, image_id, scale

        results = predict_images(model, items())
        key = (split, len(ids), ids[-1] if ids else None)
        if key not in self._gt:
            self._gt[key] = src.ground_truth(ids)
        return coco_map(self._gt[key], results)

    def backbone_layers(self, model: nn.Module) -> list[str]:
        """ViP-able backbone convolutions of ``model`` (this build's architecture)."""
        if isinstance(self.spec, TorchvisionDetectorSpec):
            return backbone_vip_layers(model, self.spec)
        return backbone_layer_names(model)

    @property
    def backbone_input(self) -> tuple[int, int, int, int]:
        """The shape the backbone sees (SSD models resize inside to their square)."""
        h, w = self.spec.transform_size if isinstance(self.spec, TorchvisionDetectorSpec) else self.spec.image_size
        return (1, self.channels, h, w)

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
            d = _read(path)
            self.spec = TorchvisionDetectorSpec.from_dict(d) if "arch" in d else DetectorSpec.from_dict(d)
            return
        c = self.cfg
        if c.arch:
            self.spec = TorchvisionDetectorSpec(**{**c.detector, "arch": c.arch, "num_classes": len(self.class_names),
                                                   "image_size": self.image_size})
            log.info("spec: %s, %d classes, input %dx%d", c.arch, len(self.class_names), *self.image_size[::-1])
        else:
            sizes, ratios = self.source("train").box_shapes(c.anchor_scenes)
            if not len(sizes):
                raise ValueError(f"no boxes in the first {c.anchor_scenes} training images: cannot fit anchors")
            anchor_sizes, anchor_ratios = fit_anchors(sizes, ratios)
            self.spec = DetectorSpec(**{**c.detector, "image_size": self.image_size,
                                        "num_classes": len(self.class_names),
                                        "anchor_sizes": anchor_sizes, "aspect_ratios": anchor_ratios})
            log.info("spec: anchors sizes %s ratios %s (from %d boxes)", anchor_sizes, anchor_ratios, len(sizes))
        write_json(path, self.spec.to_dict())

    def _train(self, name: str, model: nn.Module, recipe, vip_layers: list[str], parent: str | None,
               start: dict | None = None) -> None:
        if os.path.isfile(self._p(name, "model.safetensors")):
            return
        log.info("training %s (vip %s) for %d steps", name, vip_layers, recipe.steps)
        info = train_detector(model, self.source("train"), recipe, self._p(name), progress=self.progress, log=log.info)
        if start:
            info["start"] = start
        save_weights(model, self._p(name, "model.safetensors"))
        write_json(self._p(name, "record.json"), {"name": name, "kind": "vip" if vip_layers else "parent",
                                                   "spec": self.spec.to_dict(), "vip_layers": vip_layers,
                                                   "parent": parent, "train": info})
        self.trained.append(name)
        log.info("%s trained in %.0f s", name, info["seconds"])
        if self.on_trained is not None:
            self.on_trained(name)

    def phase_parent(self) -> None:
        if os.path.isfile(self._p("parent", "model.safetensors")):
            return
        torch.manual_seed(self.cfg.seed)
        if isinstance(self.spec, TorchvisionDetectorSpec):
            from ..models.torchvision_detector import build_torchvision_detector

            model, start = build_torchvision_detector(self.spec), None
            if self.cfg.weights:
                from ..models.torchvision_arch import read_weights
                from .provenance import portable_path

                notes = fit_detector_weights(model, self.spec, read_weights(self.cfg.weights), self.cfg.weights)
                for line in notes:
                    log.warning("%s", line)
                start = {"weights": portable_path(self.cfg.weights), "notes": notes}
        else:
            model, start = build_detector(self.spec), None
        self._train("parent", model, self.cfg.parent, [], None, start)

    def phase_sensitivity(self) -> None:
        path = self._p("sensitivity.json")
        if os.path.isfile(path):
            self.sensitivity = _read(path)
            return
        from ..vip import apply_vip, count_macs

        parent, n = self.model("parent"), self.cfg.sensitivity_scenes
        base = self.score(parent, "val", n)["map50"]
        layers = self.backbone_layers(parent)
        drops = {}
        for name in layers:
            drops[name] = base - self.score(apply_vip(parent, [name]), "val", n)["map50"]
            log.info("sensitivity %s: mAP@0.5 drop %.4f", name, drops[name])
        per = count_macs(parent.backbone, self.backbone_input).per_layer
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
        for name in self.candidates():
            rec = self.record(name)
            if "test_map50" in rec:
                continue
            model = self.model(name)
            val, test = self.score(model, "val", c.val_scenes), self.score(model, "test", c.test_scenes)
            rec.update(val_map50=val["map50"], val_map=val["map"], test_map50=test["map50"], test_map=test["map"],
                       backbone_macs=int(count_macs(model.backbone, self.backbone_input).total),
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
        shape = (1, self.channels, h, w)
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

    def _portable_recipe(self) -> dict:
        """The recipe as built, its data and weights paths repository-relative where they can be."""
        from .provenance import portable_path

        d = to_dict(self.cfg)
        for key in ("data", "weights"):
            if d.get(key):
                d[key] = portable_path(d[key])
        return d

    def _manifest(self, recs: dict, members: list[dict], files: dict, selection: dict) -> dict:
        h, w = self.spec.image_size
        keys = ("vip_layers", "val_map50", "val_map", "test_map50", "test_map", "backbone_macs")
        candidates = {n: {k: r[k] for k in keys} | {"latency": self.profiles["whole"][n],
                                                   "backbone_latency": self.profiles["backbone"][n]}
                      for n, r in recs.items()}
        return {
            "name": self.cfg.name, "task": TASK, "class_names": list(self.class_names),
            # mean 0 / std 1: preprocess yields [0, 1] pixels; the detector normalises inside (spec.image_mean/std)
            "input": InputSpec(h, w, self.channels, (0.0,) * self.channels, (1.0,) * self.channels, False).to_dict(),
            "machine": self.profiles["machine"],
            "selection": selection,
            "build": {**self.build_info, "recipe": self._portable_recipe(), "sensitivity": self.sensitivity,
                      "candidates": candidates},
            "members": members,
            "files": files,
        }


def checkpoint_bank(arch: str, weights: str, out: str, image_size: tuple[int, int], threads: list[int],
                    profiler: Callable[..., dict] = profile_models, build: dict | None = None) -> dict:
    """A one-member detector bank serving a COCO-trained torchvision checkpoint as it is.

    The checkpoint (``weights``: a local ``.pth`` state_dict or ``.safetensors``) must fit
    ``arch`` with torchvision's 91-label COCO head; its classes are ``coco_class_names()``. Its
    latency is profiled here at ``threads``; its accuracy is not measured (no data: the
    manifest's accuracy fields hold 0 and ``metrics.accuracy`` says so). WeightsError when the
    file does not fit, naming it (a head for other classes: fine-tune with ``--data``).
    Returns the manifest written to OUT/manifest.json.
    """
    from ..models.torchvision_arch import WeightsError, read_weights
    from ..models.torchvision_detector import build_torchvision_detector, coco_class_names
    from .provenance import portable_path

    names = coco_class_names()
    spec = TorchvisionDetectorSpec(arch, len(names), tuple(image_size))
    model = build_torchvision_detector(spec)
    notes = fit_detector_weights(model, spec, read_weights(weights), weights)
    if notes:
        raise WeightsError(f"{weights}: not a COCO-trained {arch} (its class head is for another class count); "
                           "serve it after fine-tuning on your data: bank build --data DIR --weights FILE")
    model.eval()
    os.makedirs(out, exist_ok=True)
    fname = "parent.safetensors"
    save_weights(model, os.path.join(out, fname))
    h, w = spec.image_size
    latency = profiler({"parent": DetectorCall(model)}, (1, 3, h, w), threads=list(threads), runs=40, warmup=3,
                       rounds=4)["parent"]
    latency = {str(t): v.to_dict() for t, v in latency.items()}
    from ..vip import count_macs

    member = {"name": "parent", "kind": "parent", "file": fname, "spec": spec.to_dict(), "vip_layers": [],
              "parent": None, "val_accuracy": 0.0, "test_accuracy": 0.0,
              "macs": int(count_macs(model.backbone, (1, 3, *spec.transform_size)).total),
              "param_bytes": int(sum(p.numel() * p.element_size() for p in model.state_dict().values())),
              "train": {"steps": 0, "start": {"weights": portable_path(weights), "notes": []}},
              "latency": latency, "served": True,
              "metrics": {"accuracy": "not measured: the checkpoint served as it is (COCO labels)"}}
    manifest = {
        "name": os.path.basename(os.path.normpath(out)), "task": TASK, "class_names": names,
        "input": InputSpec(h, w, 3, (0.0,) * 3, (1.0,) * 3, False).to_dict(), "machine": machine_info(),
        "selection": {"threads": int(threads[0]), "quantile": "p50", "epsilon": 0.0, "keep_best": True,
                      "frontier": ["parent"], "compact": ["parent"], "metric": "val_map50"},
        "build": {**(build or {}), "checkpoint": portable_path(weights)},
        "members": [member], "files": {fname: file_entry(os.path.join(out, fname))},
    }
    return save_manifest(out, manifest)
