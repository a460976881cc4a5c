"""Property-based fuzzing (`vip-perception fuzz`) of image conversion and preprocessing.

Why: the node takes ``sensor_msgs/Image`` and ``CompressedImage`` from any publisher on the
network. The contract of ``vip_perception.ros.convert`` is that a message either becomes a
uint8 image that preprocessing accepts, or raises ``ConversionError`` with one reason from
``REASONS`` (which the node counts); any other exception, or an output of the wrong shape, is
an *escape*. Hypothesis generates messages near every boundary (encodings known, odd and
random; sizes 0, 1, MAX_DIM, MAX_DIM + 1, 2**32 - 1; steps short, padded, odd; data lengths
off by one; endianness flags; compressed payloads empty, random, truncated or corrupted
JPEG/PNG, headers declaring huge images) and each case runs the node's own path: the
callback-side ``validate_message``, then ``message_to_array`` with a ROI inside the image,
then preprocessing for a one- and a three-channel model input (and the bank's own
``preprocess`` when a bank is given).

Messages are the real ``sensor_msgs.msg.Image`` / ``CompressedImage`` classes (what rclpy
hands a subscription callback) wherever they can carry the case: every generated header
value fits them (sizes and steps up to 2**32 - 1 in their uint32 fields, any uint8
``is_bigendian``, any text as ``encoding`` / ``format``). Stand-in records (``ImageMsg``,
``CompressedMsg``: the same fields) are kept for one thing the real classes cannot hold: a
payload that is not ``array.array('B')``. Their ``data`` setter turns ``bytes`` or
``bytearray`` into an ``array.array('B')`` copy, while ``convert`` is also handed ``bytes``
and ``bytearray`` payloads (serialized or raw-subscription paths, other callers), so those
cases stay stand-ins; the report counts each message class (``message_classes``).
``real=False`` (``--stand-in-messages``) uses the stand-ins for every case, for an
environment without ``sensor_msgs``. ``sensor_msgs`` is imported only for a real run; rclpy
itself is never imported.
"""
from __future__ import annotations

import array
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vip_perception.share import share_path

U32 = 2**32 - 1
DATA_CAP = 4 * 2**20          # largest payload generated (bytes): keeps 10,000 cases quick
PREPROCESS_SPECS = ((28, 28, 1), (32, 32, 3))  # (height, width, channels) model inputs
ODD_ENCODINGS = ("", "BGR8", "bgr8 ", "rgb8\0", "yuv422", "yuv422_yuy2", "32FC1", "16SC1",
                 "64FC1", "8UC2", "8UC4", "nv21", "jpeg", "mono1", "bayer_xyz8", "rgb16x")


@dataclass
class Header:
    frame_id: str = "fuzz"


@dataclass
class ImageMsg:
    """sensor_msgs/Image's fields (uint32 height, width, step; uint8 is_bigendian)."""
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: object
    header: Header = field(default_factory=Header)


@dataclass
class CompressedMsg:
    """sensor_msgs/CompressedImage's fields."""
    format: str
    data: object
    header: Header = field(default_factory=Header)


@dataclass
class Case:
    """One generated message, how it was made, and the conversion request."""
    msg: object
    target: str                      # rgb8 | mono8
    roi_frac: tuple | None           # ROI as fractions of the image, placed inside it
    kind: str                        # how the message was built (for the report)
    well_formed: bool                # should convert (raw: header consistent, size in range)

    def describe(self) -> dict:
        m = self.msg
        d = {"kind": self.kind, "target": self.target, "roi_frac": self.roi_frac,
             "data_len": len(m.data)}
        if hasattr(m, "format"):
            d["format"] = m.format
            d["head"] = bytes(m.data[:16]).hex()
        else:
            d.update(height=m.height, width=m.width, encoding=m.encoding, step=m.step,
                     is_bigendian=m.is_bigendian)
        return d


def _payload(n: int, seed: int, container: str):
    raw = np.random.default_rng(seed).bytes(n)
    if container == "bytes":
        return raw
    if container == "bytearray":
        return bytearray(raw)
    return array.array("B", raw)  # what rclpy hands a subscription callback


# ---- compressed payloads -----------------------------------------------------------------
def _png_header_only(width: int, height: int, seed: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` followed by a little garbage."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(np.random.default_rng(seed).bytes(64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _encoded(fmt: str, h: int, w: int, channels: int, depth16: bool, seed: int,
             quality: int) -> bytes:
    import cv2
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if (depth16 and fmt == "png") else np.uint8
    channels = 3 if (fmt == "jpeg" and channels == 4) else channels  # JPEG has no alpha
    shape = (h, w) if channels == 1 else (h, w, channels)
    img = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".png" if fmt == "png" else ".jpg", img, params)
    assert ok
    return buf.tobytes()


# ---- hypothesis strategies -------------------------------------------------------------
def strategies():
    """(cases strategy). Imported lazily so the CLI's --help does not need hypothesis."""
    from hypothesis import strategies as st

    from vip_perception.ros.convert import ENCODINGS, MAX_DIM

    known = sorted(ENCODINGS)
    dims = st.one_of(st.integers(0, 48), st.integers(49, 700),
                     st.sampled_from([0, 1, 2, 3, MAX_DIM - 1, MAX_DIM, MAX_DIM + 1, 2**16,
                                      2**31 - 1, U32]))
    seeds = st.integers(0, 2**32 - 1)
    # array.array('B') is what rclpy delivers (and the real classes hold): the common case
    containers = st.sampled_from(["array"] * 8 + ["bytes", "bytearray"])
    targets = st.sampled_from(["rgb8", "mono8"])
    rois = st.one_of(st.none(), st.tuples(*[st.floats(0, 1, allow_nan=False)] * 4))

    @st.composite
    def raw(draw) -> Case:
        encoding = draw(st.one_of(st.sampled_from(known), st.sampled_from(known),
                                  st.sampled_from(ODD_ENCODINGS), st.text(max_size=10)))
        enc = ENCODINGS.get(encoding)
        bpp = enc.bytes_per_pixel if enc else draw(st.integers(1, 8))
        h, w = draw(dims), draw(dims)
        row = w * bpp
        step_kind = draw(st.sampled_from(["exact", "exact", "padded", "short", "zero", "odd",
                                          "random"]))
        step = {"exact": row, "padded": row + draw(st.integers(1, 9)),
                "short": max(0, row - draw(st.integers(1, 9))), "zero": 0,
                "odd": row | 1, "random": draw(st.integers(0, U32))}[step_kind]
        step = min(step, U32)
        want = h * step
        data_kind = draw(st.sampled_from(["exact", "exact", "exact", "minus", "plus", "empty",
                                          "random"]))
        if want > DATA_CAP and data_kind in ("exact", "minus", "plus"):
            data_kind = "random"  # cannot afford the true size: a short payload instead
        n = {"exact": want, "minus": max(0, want - draw(st.integers(1, 16))),
             "plus": want + draw(st.integers(1, 16)), "empty": 0,
             "random": draw(st.integers(0, 4096))}[data_kind]
        big_endian = draw(st.one_of(st.sampled_from([0, 1]), st.integers(0, 255)))
        msg = ImageMsg(h, w, encoding, big_endian, step, _payload(n, draw(seeds), draw(containers)))
        well = (enc is not None and 0 < h <= MAX_DIM and 0 < w <= MAX_DIM and step >= row
                and n == want and not (enc.bytes_per_channel > 1 and big_endian))
        return Case(msg, draw(targets), draw(rois), f"raw/{step_kind}/{data_kind}", well)

    @st.composite
    def compressed(draw) -> Case:
        fmt = draw(st.one_of(st.sampled_from(["jpeg", "png", "", "rgb8; jpeg compressed bgr8",
                                              "bgr8; png compressed"]), st.text(max_size=12)))
        kind = draw(st.sampled_from(["empty", "random", "jpeg", "png", "truncated",
                                     "corrupted", "magic_garbage", "declared_huge"]))
        seed = draw(seeds)
        data = _compressed_data(draw, st, kind, seed)
        container = draw(containers)
        payload = data if container == "bytes" else (
            bytearray(data) if container == "bytearray" else array.array("B", data))
        return Case(CompressedMsg(fmt, payload), draw(targets), draw(rois),
                    f"compressed/{kind}", kind in ("jpeg", "png"))

    return st.one_of(raw(), raw(), compressed())


def _compressed_data(draw, st, kind: str, seed: int) -> bytes:
    """The payload of one compressed-image case of ``kind`` (see ``strategies``), drawn with
    Hypothesis' ``draw`` from strategies module ``st``."""
    from vip_perception.ros.convert import MAX_DIM

    if kind == "empty":
        data = b""
    elif kind == "random":
        data = np.random.default_rng(seed).bytes(draw(st.integers(1, 4096)))
    elif kind == "magic_garbage":
        magic = draw(st.sampled_from([b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"BM",
                                      b"II*\x00", b"RIFF"]))
        data = magic + np.random.default_rng(seed).bytes(draw(st.integers(0, 512)))
    elif kind == "declared_huge":
        # One side past MAX_DIM, the other small: the too_large path without a bomb
        # (area bombs are tested on their own: test_reliability_fuzz).
        big, small = draw(st.integers(MAX_DIM + 1, 3 * MAX_DIM)), draw(st.integers(1, 8))
        w, h = (big, small) if draw(st.booleans()) else (small, big)
        data = _png_header_only(w, h, seed)
    else:
        codec = kind if kind in ("jpeg", "png") else draw(st.sampled_from(["jpeg", "png"]))
        data = _encoded(codec, draw(st.integers(1, 64)), draw(st.integers(1, 64)),
                        draw(st.sampled_from([1, 3, 4])), draw(st.booleans()), seed,
                        draw(st.integers(1, 100)))
        if kind == "truncated":
            data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
        elif kind == "corrupted":
            buf = bytearray(data)
            rng = np.random.default_rng(seed)
            for i in rng.integers(0, len(buf), draw(st.integers(1, 16))):
                buf[i] = int(rng.integers(0, 256))
            data = bytes(buf)
    return data


# ---- the property ----------------------------------------------------------------------
def roi_inside(frac, shape) -> tuple[int, int, int, int] | None:
    """A ROI from fractions, inside an image of ``shape`` (what the node's clip guarantees)."""
    if frac is None:
        return None
    h, w = shape
    x, y = min(int(frac[0] * w), w - 1), min(int(frac[1] * h), h - 1)
    return x, y, max(1, min(int(frac[2] * w), w - x)), max(1, min(int(frac[3] * h), h - y))


def to_real_message(msg):
    """The same fields in the real sensor_msgs message, or ``msg`` itself when its payload is
    not an ``array.array('B')`` (the real class would turn it into one: see the module
    docstring). The payload array is shared, not copied."""
    if not (isinstance(msg.data, array.array) and msg.data.typecode == "B"):
        return msg
    from sensor_msgs.msg import CompressedImage, Image
    if isinstance(msg, CompressedMsg):
        out = CompressedImage()
        out.format, out.data = msg.format, msg.data
    else:
        out = Image()
        out.height, out.width, out.step = msg.height, msg.width, msg.step
        out.encoding, out.is_bigendian, out.data = msg.encoding, msg.is_bigendian, msg.data
    out.header.frame_id = msg.header.frame_id
    return out


def message_class(msg) -> str:
    """"sensor_msgs/Image", "sensor_msgs/CompressedImage", or the stand-in's name."""
    package = type(msg).__module__.split(".")[0]
    return f"{'stand-in' if package == 'vip_perception' else package}/{type(msg).__name__}"


@dataclass
class Outcome:
    result: str                   # "ok", a ConversionError reason, or "escape"
    escape: dict | None = None
    seconds: float = 0.0
    message_class: str = ""       # what the conversion was handed (``message_class``)


def check_case(case: Case, preprocessors: list | None = None, real: bool = False) -> Outcome:
    """Run one case through the node's conversion path and preprocessing; never raises.
    ``real``: hand the conversion the real sensor_msgs message (``to_real_message``)."""
    msg = to_real_message(case.msg) if real else case.msg
    out = _check(case, msg, preprocessors)
    out.message_class = message_class(msg)
    return out


def _check(case: Case, msg, preprocessors) -> Outcome:
    """``check_case`` for ``msg``, the case's message in the class to test."""
    from vip_perception.data.image_folder import to_model_array
    from vip_perception.ros import convert

    t0 = time.perf_counter()
    stage = "validate_message"
    try:
        convert.validate_message(msg)
        stage = "message_to_array"
        size = convert.message_size(msg)
        if size is None:  # a compressed payload whose header does not say: decode to learn it
            size = convert.message_to_array(msg, case.target).shape[:2]
        img, _ = convert.message_to_roi(msg, case.target, roi_inside(case.roi_frac, size) or ())
        stage = "output"
        want_ndim = 2 if case.target == "mono8" else 3
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != want_ndim \
                or (want_ndim == 3 and img.shape[2] != 3) or min(img.shape[:2]) < 1:
            return Outcome("escape", {"stage": stage, "error": "bad output", "shape": getattr(
                img, "shape", None), "dtype": str(getattr(img, "dtype", type(img)))},
                time.perf_counter() - t0)
        stage = "preprocess"
        for h, w, c in PREPROCESS_SPECS:
            arr = to_model_array(img, h, w, c)
            if arr.shape != (h, w, c) or arr.dtype != np.uint8:
                raise AssertionError(f"to_model_array gave {arr.shape} {arr.dtype}")
        for pre in preprocessors or ():
            x = pre(img)
            if x.ndim != 4 or x.shape[0] != 1 or not bool(np.isfinite(x.numpy()).all()):
                raise AssertionError(f"bank.preprocess gave {tuple(x.shape)}")
    except convert.ConversionError as exc:
        if stage not in ("validate_message", "message_to_array") or exc.reason not in convert.REASONS:
            return Outcome("escape", {"stage": stage, "error": f"ConversionError {exc}"},
                           time.perf_counter() - t0)
        return Outcome(exc.reason, None, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - this is what we are looking for
        return Outcome("escape", {"stage": stage, "error": f"{type(exc).__name__}: {exc}"[:500]},
                       time.perf_counter() - t0)
    return Outcome("ok", None, time.perf_counter() - t0)


@dataclass
class Tally:
    """Counts over a fuzz run (what the JSON reports)."""
    cases: int = 0
    results: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    message_classes: Counter = field(default_factory=Counter)
    well_formed_rejected: Counter = field(default_factory=Counter)
    escapes: list = field(default_factory=list)
    slowest: list = field(default_factory=list)   # (seconds, description)

    def record(self, case: Case, out: Outcome) -> None:
        self.cases += 1
        self.results[out.result] += 1
        self.kinds[case.kind.split("/")[0] + "/" + case.kind.split("/")[1]] += 1
        self.message_classes[out.message_class] += 1
        if out.result == "escape":
            self.escapes.append({"case": case.describe(), **out.escape})
        elif case.well_formed and out.result != "ok":
            key = f"{getattr(case.msg, 'encoding', case.kind)}:{out.result}"
            self.well_formed_rejected[key] += 1
        self.slowest.append((out.seconds, case.describe()))
        if len(self.slowest) > 64:
            self.slowest = sorted(self.slowest, key=lambda s: -s[0])[:5]

    def report(self) -> dict:
        reasons = {k: v for k, v in self.results.items() if k not in ("ok", "escape")}
        return {
            "cases": self.cases,
            "escapes": len(self.escapes),
            "converted_ok": self.results.get("ok", 0),
            "rejected": sum(reasons.values()),
            "reasons": dict(sorted(reasons.items())),
            "case_kinds": dict(sorted(self.kinds.items())),
            "message_classes": dict(sorted(self.message_classes.items())),
            "well_formed_rejected": dict(self.well_formed_rejected),
            "escape_examples": self.escapes[:20],
            "slowest_cases": [{"seconds": round(s, 4), **d} for s, d in
                              sorted(self.slowest, key=lambda s: -s[0])[:5]],
        }


def fuzz(cases: int, seed: int = 0, preprocessors: list | None = None,
         real: bool = True) -> Tally:
    """Run ``cases`` generated messages through ``check_case``; the property never fails
    (escapes are recorded, not raised), so Hypothesis only generates: no shrinking.
    ``real`` (default): real sensor_msgs classes where they can carry the case; ImportError
    names the fix when sensor_msgs is missing."""
    if real:
        try:
            import sensor_msgs.msg  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"fuzz: sensor_msgs is not importable ({exc}); install the ROS 2 "
                              f"Python packages, or fuzz with the stand-in messages "
                              f"(--stand-in-messages)") from exc
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    tally = Tally()

    @hypothesis_seed(seed)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategies())
    def property_(case):
        tally.record(case, check_case(case, preprocessors, real))

    property_()
    return tally


def bank_preprocess(requested: str | None) -> tuple[list, str | None]:
    """([preprocess], bank path) of the bank to fuzz too: ``requested``, else the shipped bank
    when present; ([], None) for "none" or when there is none."""
    if requested == "none":
        return [], None
    path = requested
    if path is None:
        shipped = share_path("config/banks/fashion_mnist")
        if shipped is None or not (shipped / "manifest.json").is_file():
            return [], None
        path = str(shipped)
    from vip_perception.bank import load_bank

    bank = load_bank(path)
    return [bank.preprocess], path
