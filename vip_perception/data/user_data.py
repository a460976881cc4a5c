"""A team's own labelled images on disk: an ImageFolder or a COCO export, listed cheaply and
decoded per item, so a 50k-image set trains in constant memory with DataLoader workers.

Layouts (``detect_dataset`` tells them apart by content):

- ImageFolder: ``DIR/{train,val[,test]}/<class>/*`` or ``DIR/<class>/*`` (then a seeded,
  stratified split). Classes are the sorted folder names.
- COCO: ``DIR/annotations/instances_*.json``, one file per split whose name contains ``train``,
  ``val`` or ``test``; a single file is split by image (seeded). ``file_name`` is looked up in
  ``DIR``, ``DIR/images`` and ``DIR/<split>`` in that order. Roboflow's COCO export
  (``DIR/{train,valid,test}/_annotations.coco.json`` beside the images) is read as well.
  Class index order is the sorted category id; ``DatasetInfo.category_ids`` maps back.

Listing keeps file names in one numpy bytes array and boxes in flat arrays (no per-item Python
objects), so forked workers do not copy the listing as they touch it. Bad input raises
``DatasetError``: one line naming the file or folder and what to do.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")
MAX_SKIPPED_FRACTION = 0.05  # unreadable images tolerated before a split is refused


class DatasetError(ValueError):
    """Bad user data; the message is one line naming the file or folder and what to do."""


@dataclass
class DatasetInfo:
    """What ``detect_dataset`` found; ``open_split`` reads the items it describes."""

    root: str
    format: str  # "image_folder" | "coco"
    task: str  # "classification" | "detection"
    class_names: list[str]
    splits: dict[str, int]  # split name -> number of images ("train", "val" and, if any, "test")
    category_ids: list[int]  # coco: the original category id of each class index; [] for folders
    val_fraction: float = 0.15  # of a layout without its own splits, held out for val
    test_fraction: float = 0.0  # ... and for test
    sources: dict[str, str] = field(default_factory=dict)  # split -> its folder or annotation file


def detect_dataset(root: str, task: str | None = None, seed: int = 0, val_fraction: float = 0.15,
                   test_fraction: float = 0.0) -> DatasetInfo:
    """Recognise the layout under ``root`` and count each split's images (no image is decoded).

    ``task`` forces "classification" (ImageFolder) or "detection" (COCO). The fractions apply only
    to a layout without its own splits; the split sizes do not depend on ``seed``.
    """
    if task not in (None, "classification", "detection"):
        raise DatasetError(f"task must be 'classification' or 'detection', got {task!r}")
    if not 0.0 < val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise DatasetError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must be in [0, 1) "
                           "with val_fraction > 0 and a sum below 1")
    if not os.path.isdir(root):
        raise DatasetError(f"{root}: data directory not found; pass an ImageFolder or a COCO directory")
    coco_files = _coco_files(root)
    if task == "classification" and coco_files:
        raise DatasetError(f"{root}: a COCO directory (annotations/instances_*.json) holds detection data; "
                           "classification needs an ImageFolder")
    if task == "detection" or (task is None and coco_files):
        if not coco_files:
            raise DatasetError(f"{root}: no annotations/instances_*.json (or Roboflow's train/{ROBOFLOW_FILE}); "
                              "detection needs a COCO directory")
        return _detect_coco(root, coco_files, seed, val_fraction, test_fraction)
    return _detect_folder(root, seed, val_fraction, test_fraction)


def open_split(info: DatasetInfo, split: str, seed: int = 0):
    """A map-style dataset over one split (torch's protocol: ``len`` and ``[i]``, so DataLoader,
    Subset and ConcatDataset take it; this module imports no torch); decoding happens in
    ``__getitem__`` (cv2), in the DataLoader's workers.

    Classification items are ``(image uint8 (H, W, 3) RGB, label int)``; detection items are
    ``(image, {"boxes": float32 (N, 4) xyxy pixels, "labels": int64 (N,) in 0..C-1,
    "iscrowd": uint8 (N,), "image_id": int})`` with crowd boxes flagged, not removed (train on
    ``drop_crowd(target)``; COCO evaluation ignores detections matched to them). The object's
    ``skipped`` (reason -> count) counts images and boxes left out; an unreadable image is
    replaced by the next readable one unless the object's ``substitute`` is set False (then the
    item is None). Use the seed given to ``detect_dataset`` for the same split.
    """
    if split not in info.splits:
        raise DatasetError(f"{info.root}: no {split!r} split (this data has {sorted(info.splits)})")
    if info.format == "coco":
        return DetectionSplit(*_coco_split(info, split, seed))
    paths, labels = _folder_split(info, split, seed)
    return ClassificationSplit(paths, labels, info.sources.get(split, info.root))


def coco_ground_truth(info: DatasetInfo, split: str, seed: int = 0) -> dict:
    """The split's boxes as a COCO dict for pycocotools: category id = class index + 1, image ids
    as in the items' ``image_id``, crowd boxes kept with ``iscrowd`` 1."""
    if info.format != "coco":
        raise DatasetError(f"{info.root}: an ImageFolder has no boxes; coco_ground_truth needs a COCO directory")
    if split not in info.splits:
        raise DatasetError(f"{info.root}: no {split!r} split (this data has {sorted(info.splits)})")
    listing = _coco_split(info, split, seed)[0]
    images, annotations = [], []
    for i in range(len(listing.image_ids)):
        name = os.path.basename(os.fsdecode(listing.paths[i]))
        images.append({"id": int(listing.image_ids[i]), "width": int(listing.sizes[i, 1]),
                       "height": int(listing.sizes[i, 0]), "file_name": name})
        lo, hi = listing.offsets[i], listing.offsets[i + 1]
        for box, label, crowd, area in zip(listing.boxes[lo:hi], listing.labels[lo:hi], listing.iscrowd[lo:hi],
                                           listing.areas[lo:hi]):
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": int(listing.image_ids[i]),
                                "category_id": int(label) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": float(area), "iscrowd": int(crowd)})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(info.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def drop_crowd(target: dict) -> dict:
    """A detection target without its crowd boxes: what a detector trains on."""
    keep = target["iscrowd"] == 0
    return {**target, "boxes": target["boxes"][keep], "labels": target["labels"][keep],
            "iscrowd": target["iscrowd"][keep]}


def folder_name(class_name: str) -> str:
    """A class name as a folder name: path separators become "_" (Fashion-MNIST's "T-shirt/top"
    is the folder "T-shirt_top"). A bank's class matches a data class when either form is equal."""
    return class_name.replace("/", "_").replace("\\", "_").strip()


def read_rgb(path: str) -> np.ndarray | None:
    """uint8 (H, W, 3) RGB (grey and 16-bit images converted), or None when it cannot be decoded."""
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------
# Datasets


class _DecodingSplit:
    """Decodes item ``i``; an unreadable image is counted and, while ``substitute`` is true, replaced
    by the next readable one (training); with ``substitute`` false the item is None (evaluation,
    which must not score an image twice).

    Each worker process counts what it met. A split whose unreadable images exceed
    ``MAX_SKIPPED_FRACTION`` of it raises ``DatasetError`` saying how many.
    """

    def __init__(self, paths: np.ndarray, where: str):
        self.paths = paths  # (N,) bytes: file paths, one numpy buffer
        self.where = where
        self.substitute = True
        self.skipped: dict[str, int] = {}
        self._unreadable: set[int] = set()

    def __len__(self) -> int:
        return int(self.paths.shape[0])

    def _count(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    def _decode(self, index: int) -> tuple[int, np.ndarray | None]:
        n = len(self)
        for step in range(n):
            i = (index + step) % n
            image = read_rgb(os.fsdecode(self.paths[i]))
            if image is not None:
                return i, image
            if i not in self._unreadable:
                self._unreadable.add(i)
                self._count("unreadable image")
            if len(self._unreadable) > MAX_SKIPPED_FRACTION * n:
                raise DatasetError(f"{self.where}: {len(self._unreadable)} of {n} images cannot be decoded "
                                   f"(e.g. {os.fsdecode(self.paths[i])}); fix or remove them "
                                   f"(up to {MAX_SKIPPED_FRACTION:.0%} are skipped)")
            if not self.substitute:
                return i, None
        raise DatasetError(f"{self.where}: no image can be decoded")


class ClassificationSplit(_DecodingSplit):
    """Items ``(image uint8 (H, W, 3) RGB, label int)`` of one ImageFolder split."""

    def __init__(self, paths: np.ndarray, labels: np.ndarray, where: str):
        super().__init__(paths, where)
        self.labels = labels  # (N,) int64

    def __getitem__(self, index: int) -> tuple[np.ndarray, int] | None:
        i, image = self._decode(int(index))
        return None if image is None else (image, int(self.labels[i]))


@dataclass
class _CocoListing:
    """One COCO split, flat: image i owns rows offsets[i]:offsets[i + 1] of the box arrays."""

    paths: np.ndarray  # (N,) bytes
    image_ids: np.ndarray  # (N,) int64
    sizes: np.ndarray  # (N, 2) int64 (height, width) as declared in the annotations
    offsets: np.ndarray  # (N + 1,) int64
    boxes: np.ndarray  # (M, 4) float32 xyxy pixels, clipped to the image
    labels: np.ndarray  # (M,) int64 class index
    iscrowd: np.ndarray  # (M,) uint8
    areas: np.ndarray  # (M,) float32, the annotation's area (box area when it has none)


class DetectionSplit(_DecodingSplit):
    """Items ``(image uint8 (H, W, 3) RGB, target)`` of one COCO split (see ``open_split``)."""

    def __init__(self, listing: _CocoListing, skipped: dict[str, int], where: str):
        super().__init__(listing.paths, where)
        self.listing = listing
        self.skipped.update(skipped)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict] | None:
        i, image = self._decode(int(index))
        if image is None:
            return None
        s = self.listing
        if tuple(image.shape[:2]) != tuple(int(v) for v in s.sizes[i]):
            raise DatasetError(f"{os.fsdecode(s.paths[i])}: image is {image.shape[1]}x{image.shape[0]} but its "
                               f"annotations say {s.sizes[i, 1]}x{s.sizes[i, 0]}; fix width/height in the JSON")
        lo, hi = s.offsets[i], s.offsets[i + 1]
        target = {"boxes": s.boxes[lo:hi].copy(), "labels": s.labels[lo:hi].copy(),
                  "iscrowd": s.iscrowd[lo:hi].copy(), "image_id": int(s.image_ids[i])}
        return image, target


# ---------------------------------------------------------------------------------------------
# ImageFolder


def _image_files(folder: str) -> list[str]:
    """Image files under ``folder`` (recursively, hidden entries left out), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def _class_folders(folder: str) -> list[str]:
    return sorted(d for d in os.listdir(folder) if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))


def list_class_folder(folder: str, class_names: list[str] | None = None) -> tuple[list[str], np.ndarray, list[str]]:
    """``folder/<class>/*`` -> (image paths, int64 labels, class names), classes sorted.

    ``class_names`` (another split's classes) must then match the sub-folders exactly.
    """
    if not os.path.isdir(folder):
        raise DatasetError(f"{folder}: folder not found")
    names = _class_folders(folder)
    if not names:
        raise DatasetError(f"{folder}: no class folders; put images in {folder}/<class name>/")
    if class_names is not None and names != class_names:
        raise DatasetError(f"{folder}: classes {names} differ from the train split's {class_names}; "
                           "every split needs the same class folders")
    paths, labels = [], []
    for label, name in enumerate(names):
        files = _image_files(os.path.join(folder, name))
        if not files:
            raise DatasetError(f"{os.path.join(folder, name)}: class folder with no images "
                               f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), names


def _detect_folder(root: str, seed: int, val_fraction: float, test_fraction: float) -> DatasetInfo:
    present = [s for s in SPLITS if os.path.isdir(os.path.join(root, s))]
    if present:
        for needed in ("train", "val"):
            if needed not in present:
                raise DatasetError(f"{root}: has {'/, '.join(present)}/ but no {needed}/ split; add "
                                   f"{os.path.join(root, needed)}/<class>/ images, or put the class folders "
                                   "directly under the directory to have them split")
        _, _, names = list_class_folder(os.path.join(root, "train"))
        splits = {s: len(list_class_folder(os.path.join(root, s), names)[0]) for s in present}
        sources = {s: os.path.join(root, s) for s in present}
        return DatasetInfo(root, "image_folder", "classification", names, splits, [], val_fraction, test_fraction,
                           sources)
    _, labels, names = list_class_folder(root)
    info = DatasetInfo(root, "image_folder", "classification", names, {}, [], val_fraction, test_fraction,
                       {s: root for s in SPLITS})
    assignment = _stratified_assignment(labels, val_fraction, test_fraction, seed)
    info.splits = {s: int((assignment == k).sum()) for k, s in enumerate(SPLITS)}
    if info.splits["test"] == 0:
        del info.splits["test"]
    if info.splits["train"] == 0 or info.splits["val"] == 0:
        raise DatasetError(f"{root}: {len(labels)} images are too few to split into train and val; add images")
    return info


def _stratified_assignment(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """(N,) int8: 0 train, 1 val, 2 test, per class in proportion (every class with >= 2 images
    gives val one, with >= 3 and a test fraction gives test one); counts do not depend on seed."""
    rng = np.random.default_rng(seed)
    out = np.zeros(labels.shape[0], dtype=np.int8)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n = members.shape[0]
        n_val = max(1, round(val_fraction * n)) if n >= 2 else 0
        n_test = max(1, round(test_fraction * n)) if test_fraction > 0 and n >= 3 else 0
        n_test = min(n_test, n - n_val - 1) if n_test else 0
        out[members[:n_val]] = 1
        out[members[n_val:n_val + n_test]] = 2
    return out


def _folder_split(info: DatasetInfo, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    source = info.sources.get(split, info.root)
    paths, labels, _ = list_class_folder(source, info.class_names)
    if os.path.normpath(source) != os.path.normpath(info.root):
        return _encode_paths(paths), labels
    keep = _stratified_assignment(labels, info.val_fraction, info.test_fraction, seed) == SPLITS.index(split)
    return _encode_paths(paths)[keep], labels[keep]


def _encode_paths(paths: list[str]) -> np.ndarray:
    """(N,) numpy bytes: one buffer, so forked workers share it instead of copying N objects."""
    return np.asarray([os.fsencode(p) for p in paths], dtype=np.bytes_) if paths else np.zeros(0, dtype="S1")


# ---------------------------------------------------------------------------------------------
# COCO


ROBOFLOW_FILE = "_annotations.coco.json"  # Roboflow's COCO export: DIR/<split>/ROBOFLOW_FILE beside the images
ROBOFLOW_SPLITS = {"train": "train", "valid": "val", "val": "val", "test": "test"}  # folder -> split


def _coco_files(root: str) -> list[str]:
    """Annotation files: DIR/annotations/instances_*.json, else Roboflow's per-split files."""
    folder = os.path.join(root, "annotations")
    if os.path.isdir(folder):
        return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                if f.startswith("instances_") and f.endswith(".json")]
    return [os.path.join(root, d, ROBOFLOW_FILE) for d in sorted(ROBOFLOW_SPLITS)
            if os.path.isfile(os.path.join(root, d, ROBOFLOW_FILE))]


def _split_of(path: str) -> str | None:
    """The split a file name names: the one of train / val / test it contains, else None (a
    Roboflow file: the split its folder names, ``valid`` being val)."""
    if os.path.basename(path) == ROBOFLOW_FILE:
        return ROBOFLOW_SPLITS.get(os.path.basename(os.path.dirname(path)).lower())
    name = os.path.basename(path)[len("instances_"):].lower()
    found = [s for s in SPLITS if s in name]
    return found[0] if len(found) == 1 else None


def _coco_sources(root: str, files: list[str]) -> dict[str, str]:
    """split -> annotation file; a single file maps to "" (split by image)."""
    if len(files) == 1:
        return {"": files[0]}
    sources: dict[str, str] = {}
    for f in files:
        split = _split_of(f)
        if split is None:
            raise DatasetError(f"{f}: with several annotation files each name must contain exactly one of "
                               "train, val, test (or keep a single file to have it split)")
        if split in sources:
            raise DatasetError(f"{f}: a second {split} annotation file besides {sources[split]}; keep one per split")
        sources[split] = f
    sources = {s: sources[s] for s in SPLITS if s in sources}
    for needed in ("train", "val"):
        if needed not in sources:
            raise DatasetError(f"{root}/annotations: no instances_{needed}*.json split besides "
                               f"{', '.join(os.path.basename(f) for f in files)}; add it, or keep a single file "
                               "to have it split")
    return sources


def _detect_coco(root: str, files: list[str], seed: int, val_fraction: float, test_fraction: float) -> DatasetInfo:
    sources = _coco_sources(root, files)
    first = sources.get("train") or sources[""]
    parsed = {split: _parse_coco(path, root)[:2] for split, path in sources.items()}  # each file read once
    categories = parsed["train" if "train" in parsed else ""][0]
    for split, (cats, _) in parsed.items():
        if cats != categories:
            raise DatasetError(f"{sources[split]}: categories {cats} differ from {first}: {categories}; export "
                               "every split with the same label set")
    splits = {split: len(listing.image_ids) for split, (_, listing) in parsed.items()}
    info = DatasetInfo(root, "coco", "detection", [name for _, name in categories], {}, [c for c, _ in categories],
                       val_fraction, test_fraction, sources)
    if "" in splits:
        info.splits = _image_split_sizes(splits[""], val_fraction, test_fraction, sources[""])
    else:
        info.splits = {s: splits[s] for s in SPLITS if s in splits}
    return info


def _image_split_sizes(n: int, val_fraction: float, test_fraction: float, path: str) -> dict[str, int]:
    n_val = max(1, round(val_fraction * n))
    n_test = max(1, round(test_fraction * n)) if test_fraction > 0 else 0
    if n - n_val - n_test < 1:
        raise DatasetError(f"{path}: {n} images are too few to split into train, val and test; add images")
    sizes = {"train": n - n_val - n_test, "val": n_val, "test": n_test}
    return {s: k for s, k in sizes.items() if k}


def _coco_split(info: DatasetInfo, split: str, seed: int) -> tuple[_CocoListing, dict[str, int], str]:
    """The split's listing, the boxes it skipped (reason -> count) and its annotation file."""
    if "" not in info.sources:
        path = info.sources[split]
        _, listing, skips = _parse_coco(path, info.root, split)
        return listing, {r: int(c.sum()) for r, c in skips.items() if c.sum()}, path
    path = info.sources[""]
    _, listing, skips = _parse_coco(path, info.root, _split_of(path))
    n = len(listing.image_ids)
    sizes = _image_split_sizes(n, info.val_fraction, info.test_fraction, path)
    order = np.random.default_rng(seed).permutation(n)
    start = {"val": 0, "test": sizes["val"], "train": sizes["val"] + sizes.get("test", 0)}[split]
    index = np.sort(order[start:start + sizes[split]])
    return _subset(listing, index), {r: int(c[index].sum()) for r, c in skips.items() if c[index].sum()}, path


def _subset(s: _CocoListing, index: np.ndarray) -> _CocoListing:
    rows = np.concatenate([np.arange(s.offsets[i], s.offsets[i + 1]) for i in index] + [np.zeros(0, np.int64)])
    counts = s.offsets[index + 1] - s.offsets[index]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return _CocoListing(s.paths[index], s.image_ids[index], s.sizes[index], offsets, s.boxes[rows],
                        s.labels[rows], s.iscrowd[rows], s.areas[rows])


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read COCO JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list):
        raise DatasetError(f"{path}: not a COCO instances file (needs 'images' and 'categories' lists)")
    return data


def _categories(data: dict, path: str) -> list[tuple[int, str]]:
    """(id, name) sorted by id: the class index order."""
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: every category needs an integer 'id' and a 'name' ({exc!r})") from exc
    ids = [c for c, _ in cats]
    if not cats or len(set(ids)) != len(ids):
        raise DatasetError(f"{path}: categories must be non-empty with unique ids, got ids {ids}")
    return cats


def _resolve_images(data: dict, path: str, root: str, split: str | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Image files (looked up in root, root/images, root/<split>, then the annotation file's own
    folder, where Roboflow puts them), int64 ids and (height, width)."""
    folders = [root, os.path.join(root, "images")] + ([os.path.join(root, split)] if split else [])
    if os.path.dirname(os.path.abspath(path)) not in {os.path.abspath(f) for f in folders}:
        folders.append(os.path.dirname(path))
    paths, ids, sizes, missing = [], [], [], []
    for im in data["images"]:
        try:
            name, image_id, size = str(im["file_name"]), int(im["id"]), (int(im["height"]), int(im["width"]))
            name = name.replace("\\", "/")  # exports made on Windows
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: every image needs 'id', 'file_name', 'width' and 'height' "
                               f"(image {im!r:.80}: {exc!r})") from exc
        found = next((os.path.join(f, name) for f in folders if os.path.isfile(os.path.join(f, name))), None)
        if found is None:
            missing.append(name)
        paths.append(found or name)
        ids.append(image_id)
        sizes.append(size)
    if missing:
        raise DatasetError(f"{path}: {len(missing)} of {len(paths)} images not found (first: {missing[0]!r}; looked "
                           f"in {', '.join(folders)}); fix file_name or copy the images there")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{path}: image ids are not unique")
    return paths, np.asarray(ids, dtype=np.int64).reshape(-1), np.asarray(sizes, dtype=np.int64).reshape(-1, 2)


def _parse_coco(path: str, root: str, split: str | None = None):
    """-> (categories [(id, name)], _CocoListing, skipped reason -> (N,) per-image counts).

    Boxes with a non-positive size or wholly outside their image are skipped and counted;
    boxes partly outside are clipped. Unknown image or category ids raise DatasetError.
    """
    data = _load_json(path)
    categories = _categories(data, path)
    class_of = {cid: k for k, (cid, _) in enumerate(categories)}
    paths, ids, sizes = _resolve_images(data, path, root, split or _split_of(path))
    row_of = {int(image_id): i for i, image_id in enumerate(ids)}
    skips = {"box with non-positive size": np.zeros(len(ids), np.int64),
             "box outside the image": np.zeros(len(ids), np.int64)}
    per_image: list[list[tuple]] = [[] for _ in ids]
    for ann in data.get("annotations") or []:
        i, label, box = _annotation(ann, row_of, class_of, path)
        h, w = sizes[i]
        x0, y0, bw, bh = box
        if bw <= 0 or bh <= 0:
            skips["box with non-positive size"][i] += 1
            continue
        clipped = (max(x0, 0.0), max(y0, 0.0), min(x0 + bw, float(w)), min(y0 + bh, float(h)))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            skips["box outside the image"][i] += 1
            continue
        area = float(ann.get("area") or 0.0) or (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
        per_image[i].append((clipped, label, 1 if ann.get("iscrowd") else 0, area))
    counts = np.asarray([len(rows) for rows in per_image], dtype=np.int64)
    flat = [row for rows in per_image for row in rows]
    listing = _CocoListing(
        _encode_paths(paths), ids, sizes, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        np.asarray([r[0] for r in flat], dtype=np.float32).reshape(-1, 4),
        np.asarray([r[1] for r in flat], dtype=np.int64), np.asarray([r[2] for r in flat], dtype=np.uint8),
        np.asarray([r[3] for r in flat], dtype=np.float32))
    return categories, listing, skips


def _annotation(ann: dict, row_of: dict[int, int], class_of: dict[int, int], path: str) -> tuple[int, int, tuple]:
    """(image row, class index, bbox x, y, w, h) of one annotation, or DatasetError."""
    try:
        image_id, category_id = int(ann["image_id"]), int(ann["category_id"])
        box = tuple(float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: annotation {ann.get('id', '?')} needs image_id, category_id and bbox "
                           f"({exc!r})") from exc
    if len(box) != 4 or not all(np.isfinite(box)):
        raise DatasetError(f"{path}: annotation {ann.get('id', '?')} bbox must be 4 finite numbers [x, y, w, h], "
                           f"got {list(box)}")
    if image_id not in row_of:
        raise DatasetError(f"{path}: annotation {ann.get('id', '?')} points at image id {image_id}, which is not in "
                           "'images'; fix the export")
    if category_id not in class_of:
        raise DatasetError(f"{path}: annotation {ann.get('id', '?')} has unknown category id {category_id} "
                           f"(categories: {sorted(class_of)}); add it to 'categories' or fix the annotation")
    return row_of[image_id], class_of[category_id], box
