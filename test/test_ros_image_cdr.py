"""sensor_msgs/Image parsed from its serialized CDR bytes (the node's raw subscription) agrees
with rclpy's own serialization for odd sizes, paddings, encodings and frame ids; hostile bytes
raise only ConversionError, and the node counts them as malformed."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from vip_perception.ros import convert  # noqa: E402
from vip_perception.ros.image_cdr import RawImage, parse_image  # noqa: E402

CASES = [  # (height, width, encoding, row padding bytes, frame_id)
    (480, 640, "bgr8", 0, "camera"), (7, 13, "rgb8", 3, ""), (1, 1, "mono8", 0, "x"),
    (5, 9, "mono16", 2, "odd_id"), (3, 5, "bgra8", 1, "a" * 37), (17, 3, "bayer_rggb8", 0, "ab"),
    (2, 7, "16UC1", 5, "abc"), (9, 11, "rgb16", 0, "frame/with/slashes"),
]


def _message(h, w, encoding, pad, frame_id, seed=0):
    enc = convert.ENCODINGS[encoding]
    step = w * enc.bytes_per_pixel + pad
    rng = np.random.default_rng(seed)
    msg = Image(height=h, width=w, encoding=encoding, step=step, is_bigendian=0)
    msg.header = Header(frame_id=frame_id)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_123, 987_654_321
    msg.data = rng.integers(0, 256, h * step, dtype=np.uint8).tobytes()
    return msg


@pytest.mark.parametrize("h, w, encoding, pad, frame_id", CASES)
def test_parse_equals_the_rclpy_serialized_message(h, w, encoding, pad, frame_id):
    msg = _message(h, w, encoding, pad, frame_id)
    raw = serialize_message(msg)
    r = parse_image(raw)
    assert isinstance(r, RawImage)
    assert (r.header.stamp.sec, r.header.stamp.nanosec, r.header.frame_id) == (
        msg.header.stamp.sec, msg.header.stamp.nanosec, frame_id)
    assert (r.height, r.width, r.encoding, r.step, r.is_bigendian) == (h, w, encoding, msg.step, 0)
    assert bytes(r.data) == bytes(msg.data)
    np.testing.assert_array_equal(convert.image_view(r), convert.image_view(msg))
    target = "mono8" if convert.ENCODINGS[encoding].channels == 1 else "rgb8"
    roi = [min(1, w - 1), 0, max(1, w - 1), h]  # cropped off the left edge where there is one
    a, box_a = convert.message_to_roi(r, target, roi)
    b, box_b = convert.message_to_roi(msg, target, roi)
    assert box_a == box_b
    np.testing.assert_array_equal(a, b)


def test_pixels_are_a_zero_copy_view_of_the_received_bytes():
    raw = serialize_message(_message(4, 6, "rgb8", 0, "cam"))
    view = convert.image_view(parse_image(raw))
    assert np.shares_memory(view, np.frombuffer(raw, np.uint8))


def test_every_truncation_and_corruption_raises_only_conversion_error():
    raw = serialize_message(_message(3, 4, "rgb8", 2, "cam"))
    for n in range(len(raw)):  # every prefix: a truncated sample
        with pytest.raises(convert.ConversionError):
            convert.validate_image(parse_image(raw[:n]))
    rng = np.random.default_rng(1)
    for _ in range(2000):  # random byte flips: parse + validate raise ConversionError or succeed
        b = bytearray(raw)
        for i in rng.integers(0, len(b), 3):
            b[i] = int(rng.integers(0, 256))
        try:
            convert.validate_image(parse_image(bytes(b)))
        except convert.ConversionError as exc:
            assert exc.reason in convert.REASONS


@pytest.mark.parametrize("mutate, text", [
    (lambda b: b"\x00\x09" + b[2:], "encapsulation"),                 # not CDR
    (lambda b: b[:12] + b"\xff\xff\xff\x7f" + b[16:], "frame_id"),   # string longer than the buffer
    (lambda b: b[:-7] + b"\xff\xff\x00\x00" + b[-3:], "data"),        # data length beyond the end
])
def test_hostile_fields_are_named(mutate, text):
    raw = serialize_message(_message(1, 3, "mono8", 0, "cam"))  # data: last 3 bytes (+ length before)
    with pytest.raises(convert.ConversionError) as err:
        convert.validate_image(parse_image(mutate(raw)))
    assert err.value.reason == "decode_failed" and text in str(err.value)


def test_a_wrong_data_length_is_size_mismatch_after_parsing():
    msg = _message(4, 4, "mono8", 0, "cam")
    msg.data = bytes(15)  # one byte short of height x step
    with pytest.raises(convert.ConversionError) as err:
        convert.validate_image(parse_image(serialize_message(msg)))
    assert err.value.reason == "size_mismatch"
