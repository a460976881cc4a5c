"""The project's data written in the layouts a team brings its own data in (``user_data``), so the
one-command build, the accuracy command and the README's worked example run offline here:

- Fashion-MNIST as an ImageFolder ``DIR/{train,val,test}/<class>/*.png``, each garment rendered
  as the station camera shows it (``station_render.render_station``, nominal view) at ``size``;
- conveyor scenes (``conveyor.ConveyorScenes``) as a COCO directory: ``DIR/images/<split>/*.png``
  and ``DIR/annotations/instances_{train,val,test}.json``.
"""
from __future__ import annotations

import os

import numpy as np

from ..jsonfile import write_json
from .user_data import folder_name


class ExportError(ValueError):
    """An export that cannot be written; the message names the path and what to do."""


def _fresh_dir(out: str) -> None:
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ExportError(f"{out}: exists and is not an empty directory; pass a new --out")
    os.makedirs(out, exist_ok=True)


def _stratified_subset(index: np.ndarray, labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """``limit`` (0: all) entries of ``index``, seeded, spread evenly over the classes of
    ``labels[index]`` (every class keeps at least one image), in ascending order."""
    if not limit or limit >= len(index):
        return index
    rng = np.random.default_rng(seed)
    classes = np.unique(labels[index])
    share = [limit // len(classes) + (1 if k < limit % len(classes) else 0) for k in range(len(classes))]
    picked = [rng.permutation(index[labels[index] == c])[:n] for c, n in zip(classes, share)]
    return np.sort(np.concatenate(picked))


def export_fashion_mnist(out: str, size: int = 64, limit: int = 0, val_fraction: float = 0.1, seed: int = 0,
                         root: str | None = None, progress: bool = False) -> dict[str, int]:
    """Write Fashion-MNIST as an ImageFolder of grey PNGs, size x size; returns images per split.

    train and val are a seeded split of the 60k training set (``val_fraction`` to val), test is
    the 10k test set; ``limit`` > 0 keeps that many images per split (seeded, spread evenly over
    the classes). Class folders are
    ``user_data.folder_name`` of the class names. File names keep the source index
    (``<source split>_<index>.png``). Raises ExportError for a non-empty ``out``, size < 28 or
    0 < limit < 10.
    """
    import cv2
    import torch
    from tqdm import tqdm

    from .fashion_mnist import CLASS_NAMES, load_fashion_mnist, train_val_split
    from .station_render import render_station

    if size < 28:
        raise ExportError(f"size must be >= 28 (the garments' own resolution), got {size}")
    if limit < 0 or 0 < limit < len(CLASS_NAMES) or not 0.0 < val_fraction < 1.0:
        raise ExportError(f"limit must be 0 (all) or >= {len(CLASS_NAMES)} (an image per class), and val_fraction "
                          f"in (0, 1); got {limit}, {val_fraction}")
    _fresh_dir(out)
    train, test = load_fashion_mnist("train", root), load_fashion_mnist("test", root)
    tr, va = train_val_split(len(train), round(val_fraction * len(train)), seed)
    parts = {"train": (train, "train", tr), "val": (train, "train", va), "test": (test, "test", np.arange(len(test)))}
    folders = [folder_name(c) for c in CLASS_NAMES]
    counts = {}
    for split, (ds, source, index) in parts.items():
        index = _stratified_subset(index, ds.labels, limit, seed)
        for name in folders:
            os.makedirs(os.path.join(out, split, name), exist_ok=True)
        for start in tqdm(range(0, len(index), 512), desc=split, disable=not progress):
            batch = index[start:start + 512]
            grey = render_station(torch.from_numpy(ds.images[batch, :, :, 0]), size)  # (B, 1, S, S) float 0..255
            pixels = grey[:, 0].round().to(torch.uint8).numpy()  # (B, S, S)
            for i, image in zip(batch.tolist(), pixels):
                path = os.path.join(out, split, folders[int(ds.labels[i])], f"{source}_{i:05d}.png")
                if not cv2.imwrite(path, image):
                    raise ExportError(f"{path}: could not write PNG")
        counts[split] = len(index)
    write_json(os.path.join(out, "export.json"), {"what": "fashion-mnist", "size": size, "seed": seed,
                                                   "images": counts, "class_names": list(CLASS_NAMES)})
    return counts


def conveyor_split_sizes(images: int) -> dict[str, int]:
    """``images`` scenes in all -> per split: 15 % val, 15 % test (at least one each), the rest train."""
    held = max(1, round(0.15 * images))
    if images - 2 * held < 1:
        raise ExportError(f"--images must be at least 3 (one scene per split), got {images}")
    return {"train": images - 2 * held, "val": held, "test": held}


def export_conveyor(out: str, images: int = 600, config=None, root: str | None = None,
                    progress: bool = False) -> dict[str, int]:
    """Write ``images`` conveyor scenes (``conveyor_split_sizes``) as a COCO directory; returns
    scenes per split. ``config``: a ``conveyor.ConveyorConfig`` (default scenes, 320x240);
    ``root``: the Fashion-MNIST directory the garments come from. Category ids are 1..10 in
    Fashion-MNIST order. Raises ExportError for a non-empty ``out``."""
    import cv2
    from tqdm import tqdm

    from .conveyor import ConveyorConfig, ConveyorScenes, coco_dict

    sizes = conveyor_split_sizes(images)
    _fresh_dir(out)
    config = config or ConveyorConfig()
    os.makedirs(os.path.join(out, "annotations"))
    for split, count in sizes.items():
        scenes = ConveyorScenes(split, config, root=root)
        os.makedirs(os.path.join(out, "images", split))
        names = [f"{split}/{i:06d}.png" for i in range(count)]  # relative to DIR/images
        for i in tqdm(range(count), desc=split, disable=not progress):
            path = os.path.join(out, "images", names[i])
            if not cv2.imwrite(path, cv2.cvtColor(scenes.scene(i).image, cv2.COLOR_RGB2BGR)):
                raise ExportError(f"{path}: could not write PNG")
        write_json(os.path.join(out, "annotations", f"instances_{split}.json"), coco_dict(scenes, count, names),
                   indent=None)
    return sizes
