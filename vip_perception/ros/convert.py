"""sensor_msgs Image / CompressedImage <-> NumPy, validated before any byte is touched.

Why its own module: a malformed message from some other node (wrong ``step``, truncated
``data``, an encoding we do not know, absurd dimensions) must never reach OpenCV or the model,
and must never take the node down. Every problem becomes one ``ConversionError`` carrying a
reason code from ``REASONS``, which the node counts per camera and reports in diagnostics.

Output is what ``Bank.preprocess`` takes: ``(H, W, 3)`` RGB uint8, or ``(H, W)`` gray uint8
when the caller asks for ``target="mono8"`` (a one-channel bank then skips a colour pass).
Raw images are wrapped with a zero-copy ``np.frombuffer`` view (row padding from ``step`` is
handled with strides); only the colour conversion, when one is needed, copies.

Decoding backend, chosen once: ``cv_bridge`` when a ROS 2 distribution provides it, otherwise
``rosbags-image``'s colour tables (pure Python + OpenCV). Validation is ours in both cases.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

try:  # a sourced ROS 2 distribution
    from cv_bridge import CvBridge as _CvBridge  # type: ignore

    BACKEND = "cv_bridge"
except Exception:  # noqa: BLE001 - any import problem means "not usable here"
    _CvBridge = None
    BACKEND = "rosbags-image"

import cv2
from rosbags.image.image import convert_color as _rosbags_convert_color

from vip_perception.roi import clip_roi, crop

# The fixed set of reason codes a ConversionError may carry (diagnostics keys use them).
REASONS = ("unknown_encoding", "zero_size", "too_large", "bad_step", "size_mismatch",
           "bad_endianness", "decode_failed", "roi_outside")

MAX_DIM = 8192                  # either side, pixels
MAX_BYTES = 256 * 1024 * 1024   # payload cap, raw or compressed


class ConversionError(ValueError):
    """A message that cannot become an image; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str):
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Encoding:
    """What a ROS encoding string means for the bytes."""
    channels: int
    bytes_per_channel: int   # 1 or 2
    kind: str                # "rgb", "bgr", "rgba", "bgra", "mono", "bayer"

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_channel


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(3, 1, "rgb"), "bgr8": Encoding(3, 1, "bgr"),
    "rgba8": Encoding(4, 1, "rgba"), "bgra8": Encoding(4, 1, "bgra"),
    "mono8": Encoding(1, 1, "mono"), "8UC1": Encoding(1, 1, "mono"),
    "mono16": Encoding(1, 2, "mono"), "16UC1": Encoding(1, 2, "mono"),
    "rgb16": Encoding(3, 2, "rgb"), "bgr16": Encoding(3, 2, "bgr"),
    "8UC3": Encoding(3, 1, "bgr"),  # OpenCV's default channel order
    **{f"bayer_{p}8": Encoding(1, 1, "bayer") for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{f"bayer_{p}16": Encoding(1, 2, "bayer") for p in ("rggb", "bggr", "gbrg", "grbg")},
}
TARGETS = ("rgb8", "mono8")


def validate_image(msg) -> Encoding:
    """Check a sensor_msgs/Image's header fields against its payload; no pixel is read.

    Cheap enough for a subscription callback (a few attribute reads and ``len``).
    """
    enc = ENCODINGS.get(msg.encoding)
    if enc is None:
        raise ConversionError("unknown_encoding", f"encoding {msg.encoding!r} is not one of "
                              f"{sorted(ENCODINGS)}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ConversionError("zero_size", f"{w}x{h} image")
    if h > MAX_DIM or w > MAX_DIM:
        raise ConversionError("too_large", f"{w}x{h} exceeds {MAX_DIM}x{MAX_DIM}")
    if step < w * enc.bytes_per_pixel:
        raise ConversionError("bad_step", f"step {step} < width {w} x {enc.bytes_per_pixel} "
                              f"bytes per pixel ({msg.encoding})")
    if h * step > MAX_BYTES:
        raise ConversionError("too_large", f"{h * step} bytes exceeds {MAX_BYTES}")
    if len(msg.data) != h * step:
        raise ConversionError("size_mismatch", f"data has {len(msg.data)} bytes, height {h} x "
                              f"step {step} = {h * step}")
    if enc.bytes_per_channel > 1 and bool(msg.is_bigendian) and np.little_endian:
        # Swapping is possible but no camera driver we know sends it; refuse rather than guess.
        raise ConversionError("bad_endianness", f"big-endian {msg.encoding} is not supported")
    return enc


MAX_PIXELS = MAX_DIM * MAX_DIM  # decoded area cap (a compressed header can claim anything)
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def declared_size(data) -> tuple[int, int] | None:
    """(height, width) a PNG or JPEG header declares, read without decoding; None otherwise.

    Why: cv2.imdecode allocates whatever the header claims before failing; reading the
    header first keeps a decompression bomb as cheap as any other malformed message.
    """
    head = bytes(data[:32])
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    if not head.startswith(b"\xff\xd8"):
        return None
    try:
        buf = memoryview(data).cast("B")  # bytes, bytearray, array.array('B'), uint8 arrays: no copy
    except TypeError:
        buf = memoryview(bytes(data))  # e.g. a list of ints
    i, n = 2, len(buf)
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:                               # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:     # markers without a length
            i += 2
            continue
        length = (buf[i + 2] << 8) | buf[i + 3]
        if marker in _SOF_MARKERS:
            if i + 9 > n:
                return None
            return (buf[i + 5] << 8) | buf[i + 6], (buf[i + 7] << 8) | buf[i + 8]
        if marker == 0xDA or length < 2:                 # scan data before a frame header
            return None
        i += 2 + length
    return None


def validate_compressed(msg) -> None:
    """Check a sensor_msgs/CompressedImage before decoding (payload cap, non-empty)."""
    n = len(msg.data)
    if n == 0:
        raise ConversionError("zero_size", "empty compressed payload")
    if n > MAX_BYTES:
        raise ConversionError("too_large", f"{n} compressed bytes exceeds {MAX_BYTES}")
    size = declared_size(msg.data)
    if size is not None and (max(size) > MAX_DIM or size[0] * size[1] > MAX_PIXELS):
        raise ConversionError("too_large", f"header declares {size[1]}x{size[0]} "
                              f"(limit {MAX_DIM} a side); not decoded")


def image_view(msg, enc: Encoding | None = None) -> np.ndarray:
    """Zero-copy view of a validated Image's pixels: (H, W) or (H, W, C), row padding skipped."""
    enc = enc or validate_image(msg)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    dtype = np.dtype(np.uint16 if enc.bytes_per_channel == 2 else np.uint8)
    flat = np.frombuffer(msg.data, dtype=np.uint8)                          # (h*step,)
    rows = flat.reshape(h, step)[:, : w * enc.bytes_per_pixel]            # (h, w*bpp) view
    if dtype != np.uint8:
        if step % 2:  # a 16-bit row starting on an odd byte cannot be viewed as uint16
            rows = np.ascontiguousarray(rows)
        rows = rows.view(dtype)                                             # (h, w*C) uint16
    if enc.channels == 1:
        return rows                                                         # (h, w)
    return rows.reshape(h, w, enc.channels)                                 # (h, w, C)


def _to_8bit(img: np.ndarray) -> np.ndarray:
    # 16-bit -> 8-bit by the top byte: full range maps to full range, as cv_bridge's scaling.
    return (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img


def _convert_pixels(img: np.ndarray, encoding: str, enc: Encoding, target: str) -> np.ndarray:
    """Colour conversion of a raw view to ``target`` (rgb8 or mono8)."""
    if enc.kind == "bayer":
        # Demosaic at native depth, then reduce (rosbags-image knows OpenCV's inverted names).
        rgb = _rosbags_convert_color(np.ascontiguousarray(img), encoding,
                                     "rgb16" if enc.bytes_per_channel == 2 else "rgb8")
        img, enc = _to_8bit(rgb), ENCODINGS["rgb8"]
    img = _to_8bit(img)
    if target == "mono8":
        code = {"mono": None, "rgb": cv2.COLOR_RGB2GRAY, "bgr": cv2.COLOR_BGR2GRAY,
                "rgba": cv2.COLOR_RGBA2GRAY, "bgra": cv2.COLOR_BGRA2GRAY}[enc.kind]
    else:
        code = {"mono": cv2.COLOR_GRAY2RGB, "rgb": None, "bgr": cv2.COLOR_BGR2RGB,
                "rgba": cv2.COLOR_RGBA2RGB, "bgra": cv2.COLOR_BGRA2RGB}[enc.kind]
    return img if code is None else cv2.cvtColor(img, code)


_bridge = None


def _cv_bridge():
    global _bridge
    if _bridge is None:
        _bridge = _CvBridge()
    return _bridge


def _cv_bridge_array(msg, target: str) -> np.ndarray:
    if hasattr(msg, "format"):
        return _cv_bridge().compressed_imgmsg_to_cv2(msg, desired_encoding=target)
    return _cv_bridge().imgmsg_to_cv2(msg, desired_encoding=target)


def _frame_box(roi, frame_hw) -> tuple[int, int, int, int]:
    """``roi`` clipped to the frame by the one roi rule; the whole frame when ``roi`` is empty.
    Raises ConversionError("roi_outside") when nothing of the roi is inside the frame."""
    try:
        box = clip_roi(roi, frame_hw)
    except ValueError as exc:
        raise ConversionError("roi_outside", str(exc)) from None
    return box if box is not None else (0, 0, int(frame_hw[1]), int(frame_hw[0]))


def _image_roi(msg, target: str, roi, backend: str | None):
    enc = validate_image(msg)
    box = _frame_box(roi, (int(msg.height), int(msg.width)))
    if (backend or BACKEND) == "cv_bridge" and _CvBridge is not None:
        return crop(_cv_bridge_array(msg, target), box), box
    view = image_view(msg, enc)
    if enc.kind == "bayer":  # demosaiced whole: a crop would shift the colour pattern
        return crop(_convert_pixels(view, msg.encoding, enc, target), box), box
    return _convert_pixels(crop(view, box), msg.encoding, enc, target), box


def _compressed_full(msg, target: str, backend: str | None) -> np.ndarray:
    validate_compressed(msg)
    if (backend or BACKEND) == "cv_bridge" and _CvBridge is not None:
        img = _cv_bridge_array(msg, target)
    else:
        flag = cv2.IMREAD_GRAYSCALE if target == "mono8" else cv2.IMREAD_COLOR
        img = cv2.imdecode(np.frombuffer(msg.data, np.uint8), flag)
        if img is None:
            raise ConversionError("decode_failed", f"format {msg.format!r}: not decodable")
        if target == "rgb8":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[0] > MAX_DIM or img.shape[1] > MAX_DIM:
        raise ConversionError("too_large", f"decoded {img.shape[1]}x{img.shape[0]}")
    return img


def message_to_roi(msg, target: str = "rgb8", roi=None, backend: str | None = None
                   ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Image or CompressedImage (recognised by ``format``) -> (pixels of the roi, the roi).

    ``roi`` is (x, y, w, h) in frame pixels, or empty for the whole frame; it is clipped to
    the frame with ``vip_perception.roi.clip_roi``. Returns the roi's pixels as (h, w, 3) RGB
    or (h, w) gray uint8 (for ``target`` rgb8 / mono8) and the clipped roi, whose (x, y) is
    the pixels' origin in the frame. A raw image is cropped before any colour conversion, so
    only the roi is converted; an rgb8/mono8 image already in ``target`` comes back as a
    read-only zero-copy view of ``msg.data``. Raises only ConversionError (reason
    ``roi_outside`` when the roi leaves nothing of this frame).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    try:
        if hasattr(msg, "format"):
            img = _compressed_full(msg, target, backend)
            box = _frame_box(roi, img.shape[:2])
            return crop(img, box), box
        return _image_roi(msg, target, roi, backend)
    except ConversionError:
        raise
    except Exception as exc:  # nothing but ConversionError may escape
        what = f"format {msg.format!r}" if hasattr(msg, "format") else msg.encoding
        raise ConversionError("decode_failed", f"{what}: {exc}") from exc


def image_to_array(msg, target: str = "rgb8", backend: str | None = None) -> np.ndarray:
    """sensor_msgs/Image -> the whole frame, as ``message_to_roi`` returns it."""
    if hasattr(msg, "format"):
        raise ValueError("image_to_array takes a sensor_msgs/Image, got a CompressedImage")
    return message_to_roi(msg, target, None, backend)[0]


def compressed_to_array(msg, target: str = "rgb8", backend: str | None = None) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> the whole frame, as ``message_to_roi``."""
    if not hasattr(msg, "format"):
        raise ValueError("compressed_to_array takes a sensor_msgs/CompressedImage")
    return message_to_roi(msg, target, None, backend)[0]


def message_to_array(msg, target: str = "rgb8") -> np.ndarray:
    """Either message type -> the whole frame, as ``message_to_roi`` returns it."""
    return message_to_roi(msg, target, None)[0]


def message_size(msg) -> tuple[int, int] | None:
    """(height, width) the message declares without decoding (an Image's header, a PNG/JPEG
    header); None when a compressed payload does not say."""
    if hasattr(msg, "format"):
        return declared_size(msg.data)
    return int(msg.height), int(msg.width)


def stamp_seconds(stamp) -> float:
    """builtin_interfaces/Time -> seconds (0.0 for an unstamped message)."""
    return stamp.sec + stamp.nanosec * 1e-9


def validate_message(msg) -> None:
    """The callback-side check for either message type."""
    if hasattr(msg, "format"):
        validate_compressed(msg)
    else:
        validate_image(msg)


def array_to_image(img: np.ndarray, encoding: str = "bgr8", header=None):
    """NumPy -> sensor_msgs/Image (for the camera source, the debug image and tests).

    ``img`` must already be laid out as ``encoding`` says (no colour conversion here).
    """
    from sensor_msgs.msg import Image

    enc = ENCODINGS.get(encoding)
    if enc is None:
        raise ConversionError("unknown_encoding", f"encoding {encoding!r}")
    img = np.ascontiguousarray(img)
    chans = 1 if img.ndim == 2 else img.shape[2]
    if chans != enc.channels or img.itemsize != enc.bytes_per_channel:
        raise ValueError(f"array {img.shape} {img.dtype} does not match encoding {encoding}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0 if np.little_endian or img.itemsize == 1 else 1
    msg.step = int(img.shape[1] * enc.bytes_per_pixel)
    msg.data = img.tobytes()  # bytes: setting an ndarray directly is ~50x slower in rclpy
    return msg


def array_to_compressed(img_rgb: np.ndarray, fmt: str = "jpeg", header=None, quality: int = 90):
    """RGB or gray uint8 -> sensor_msgs/CompressedImage."""
    from sensor_msgs.msg import CompressedImage

    if img_rgb.ndim == 3:
        img_rgb = cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR)
    ext = ".png" if fmt == "png" else ".jpg"
    params = [] if fmt == "png" else [cv2.IMWRITE_JPEG_QUALITY, quality]
    ok, buf = cv2.imencode(ext, img_rgb, params)
    if not ok:
        raise ValueError(f"could not encode image as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = buf.tobytes()
    return msg
