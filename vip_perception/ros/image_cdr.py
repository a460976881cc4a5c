"""sensor_msgs/Image straight from its serialized CDR bytes, the pixels as a zero-copy view.

Why: a raw subscription (``create_subscription(..., raw=True)``) hands the callback the
serialized message as ``bytes``. rclpy's own path would deserialize it into a C struct and then
build a Python message, copying the ~1 MB payload twice per frame and creating Python objects
for every field; parsing the handful of header fields here and keeping ``data`` as a
``memoryview`` into those bytes costs microseconds and no copy. ``RawImage`` has the fields
``convert`` reads (``header``, ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``,
``data``), so validation, conversion and the debug image treat it like an Image.

Layout (OMG CDR as Fast DDS writes it; ``sensor_msgs/Image`` is a final type, so XCDR1 and
XCDR2 coincide for it): a 4-byte encapsulation header (0x0000/0x0006 big endian,
0x0001/0x0007 little endian), then, each aligned to its size from the end of that header:
int32 sec, uint32 nanosec, string frame_id, uint32 height, uint32 width, string encoding,
uint8 is_bigendian, uint32 step, uint32 length + the data bytes. A string is uint32 length
(terminating NUL included) + the bytes + NUL.

Hostile input: every length is checked against the buffer before it is used; anything that
does not parse raises ``ConversionError("decode_failed")`` naming the field.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from .convert import ConversionError

_ENCAPSULATIONS = {b"\x00\x00": ">", b"\x00\x06": ">", b"\x00\x01": "<", b"\x00\x07": "<"}
MAX_STRING = 4096  # frame_id / encoding longer than this is not a camera's


@dataclass
class RawImage:
    """sensor_msgs/Image fields; ``data`` is a read-only memoryview into the received bytes."""
    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


class _Reader:
    def __init__(self, buf: memoryview, order: str):
        self.buf, self.order, self.pos = buf, order, 4  # alignment counts from after the header

    def _align(self, n: int) -> None:
        self.pos += (-(self.pos - 4)) % n

    def u32(self, field: str, signed: bool = False) -> int:
        self._align(4)
        if self.pos + 4 > len(self.buf):
            raise ConversionError("decode_failed", f"CDR ends before {field}")
        (v,) = struct.unpack_from(self.order + ("i" if signed else "I"), self.buf, self.pos)
        self.pos += 4
        return v

    def u8(self, field: str) -> int:
        if self.pos + 1 > len(self.buf):
            raise ConversionError("decode_failed", f"CDR ends before {field}")
        self.pos += 1
        return self.buf[self.pos - 1]

    def string(self, field: str) -> str:
        n = self.u32(field)
        if n == 0 or n > MAX_STRING or self.pos + n > len(self.buf) or self.buf[self.pos + n - 1] != 0:
            raise ConversionError("decode_failed", f"CDR string {field} has a bad length ({n}) "
                                  "or no terminating NUL")
        s = bytes(self.buf[self.pos:self.pos + n - 1]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def blob(self, field: str) -> memoryview:
        n = self.u32(field)
        if self.pos + n > len(self.buf):
            raise ConversionError("decode_failed", f"CDR {field} claims {n} bytes, "
                                  f"{len(self.buf) - self.pos} left")
        self.pos += n
        return self.buf[self.pos - n:self.pos]


def parse_image(raw) -> RawImage:
    """Serialized sensor_msgs/Image (``bytes`` from a raw subscription) -> RawImage with
    ``data`` a zero-copy view of its pixel bytes. Raises ConversionError("decode_failed")
    for anything that is not a well-formed serialized Image; the pixel layout itself (step,
    size, encoding) is checked afterwards by ``convert.validate_image``."""
    buf = memoryview(raw).cast("B") if not isinstance(raw, memoryview) else raw
    order = _ENCAPSULATIONS.get(bytes(buf[:2]))
    if order is None or len(buf) < 4:
        raise ConversionError("decode_failed", f"not a CDR-serialized message (encapsulation "
                              f"{bytes(buf[:2]).hex() or 'missing'})")
    r = _Reader(buf, order)
    sec, nanosec = r.u32("header.stamp.sec", signed=True), r.u32("header.stamp.nanosec")
    frame_id = r.string("header.frame_id")
    height, width = r.u32("height"), r.u32("width")
    encoding = r.string("encoding")
    is_bigendian = r.u8("is_bigendian")
    step = r.u32("step")
    data = r.blob("data")
    if nanosec >= 1_000_000_000:
        raise ConversionError("decode_failed", f"header.stamp.nanosec {nanosec} >= 1e9")
    header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)
    return RawImage(header, height, width, encoding, is_bigendian, step, data)
