"""The synthetic scenes written as a video file, for runs that play a recorded camera.

Why: a node served from a video exercises what a deployed camera does (decode, frames larger
than the model input, a fixed rate) with content whose look the banks were trained on; the
portability benchmarks play such a file. ``station`` is ``synthetic_scene.ConveyorScene`` at
width x height; ``belt`` is ``conveyor.BeltStream`` (the detector's test split) rendered at its
320x240 and scaled with INTER_AREA, as the camera source does.
"""
from __future__ import annotations

import os

import numpy as np

SCENES = ("station", "belt")
BELT_SIZE = (320, 240)


def scene_images(scene: str, width: int, height: int, seed: int = 0):
    """Endless RGB uint8 (height, width, 3) frames of ``scene``; ValueError for an unknown scene."""
    import cv2

    if scene == "station":
        from .synthetic_scene import ConveyorScene, SceneConfig

        for f in ConveyorScene(SceneConfig(width=width, height=height, seed=seed)):
            yield f.image
    elif scene == "belt":
        from .conveyor import BeltStream, ConveyorConfig

        stream = BeltStream("test", ConveyorConfig(width=BELT_SIZE[0], height=BELT_SIZE[1], seed=seed))
        index = 0
        while True:
            image = stream.frame(index).image
            yield cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            index += 1
    else:
        raise ValueError(f"scene must be one of {SCENES}, got {scene!r}")


def write_scene_video(path: str, scene: str, width: int, height: int, fps: float, frames: int,
                      seed: int = 0) -> int:
    """Write ``frames`` frames of ``scene`` to ``path`` (Motion-JPEG AVI, OpenCV's built-in
    encoder); returns the frame count. ValueError naming the path when OpenCV cannot write it."""
    import cv2

    if frames < 1 or fps <= 0 or width < 28 or height < 28:
        raise ValueError(f"{path}: need frames >= 1, fps > 0 and a frame of at least 28x28, "
                         f"got {frames}, {fps}, {width}x{height}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (width, height))
    if not writer.isOpened():
        raise ValueError(f"{path}: OpenCV cannot write a Motion-JPEG AVI there (use a .avi path)")
    try:
        for _, rgb in zip(range(frames), scene_images(scene, width, height, seed)):
            image = np.ascontiguousarray(rgb[..., ::-1])  # RGB -> BGR for OpenCV
            if image.shape[2] != 3:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            writer.write(image)
    finally:
        writer.release()
    return frames
