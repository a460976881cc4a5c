"""Image messages <-> arrays: round trips over encodings, padding, and every malformed case."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("sensor_msgs.msg")

from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from vip_perception.ros import convert  # noqa: E402
from vip_perception.ros.convert import ConversionError  # noqa: E402

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)  # odd sizes on purpose


def _msg(h, w, enc, step, data, bigendian=0):
    m = Image()
    m.height, m.width, m.encoding, m.step, m.is_bigendian = h, w, enc, step, bigendian
    m.data = bytes(data)
    return m


@pytest.mark.parametrize("encoding,make", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[..., ::-1]),
    ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])),
    ("bgra8", lambda rgb: np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
    ("rgb16", lambda rgb: rgb.astype(np.uint16) * 257),
    ("bgr16", lambda rgb: rgb[..., ::-1].astype(np.uint16) * 257),
])
def test_colour_round_trip(encoding, make):
    msg = convert.array_to_image(make(RGB), encoding)
    out = convert.image_to_array(msg, "rgb8")
    assert out.dtype == np.uint8 and out.shape == RGB.shape
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize("encoding,scale", [("mono8", 1), ("mono16", 257), ("8UC1", 1)])
def test_mono_round_trip(encoding, scale):
    gray = RGB[..., 0]
    dtype = np.uint16 if scale > 1 else np.uint8
    msg = convert.array_to_image(gray.astype(dtype) * scale, encoding)
    np.testing.assert_array_equal(convert.image_to_array(msg, "mono8"), gray)
    rgb = convert.image_to_array(msg, "rgb8")
    assert rgb.shape == gray.shape + (3,)
    np.testing.assert_array_equal(rgb[..., 1], gray)


def test_rgb_to_mono_matches_opencv():
    msg = convert.array_to_image(RGB[..., ::-1], "bgr8")
    np.testing.assert_array_equal(convert.image_to_array(msg, "mono8"),
                                  cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("pattern,code", [("rggb", cv2.COLOR_BAYER_BG2RGB),
                                          ("bggr", cv2.COLOR_BAYER_RG2RGB),
                                          ("gbrg", cv2.COLOR_BAYER_GR2RGB),
                                          ("grbg", cv2.COLOR_BAYER_GB2RGB)])
def test_bayer_matches_opencv_demosaic(pattern, code):
    raw = RNG.integers(0, 256, (8, 10), dtype=np.uint8)
    out = convert.image_to_array(convert.array_to_image(raw, f"bayer_{pattern}8"), "rgb8")
    np.testing.assert_array_equal(out, cv2.cvtColor(raw, code))


def test_row_padding_is_skipped_and_view_is_zero_copy():
    pad = 5
    rows = np.zeros((RGB.shape[0], RGB.shape[1] * 3 + pad), np.uint8)
    rows[:, : RGB.shape[1] * 3] = RGB.reshape(RGB.shape[0], -1)
    msg = _msg(RGB.shape[0], RGB.shape[1], "rgb8", rows.shape[1], rows.tobytes())
    out = convert.image_to_array(msg, "rgb8")
    np.testing.assert_array_equal(out, RGB)
    assert not out.flags.owndata  # a view on msg.data, not a copy


def test_padded_odd_step_16bit():
    gray = RNG.integers(0, 65536, (4, 3), dtype=np.uint16)
    step = 3 * 2 + 1
    rows = np.zeros((4, step), np.uint8)
    rows[:, :6] = gray.view(np.uint8).reshape(4, 6)
    msg = _msg(4, 3, "mono16", step, rows.tobytes())
    np.testing.assert_array_equal(convert.image_to_array(msg, "mono8"), (gray >> 8).astype(np.uint8))


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_round_trip(fmt):
    smooth = cv2.GaussianBlur(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 3, (48, 1, 3)), (5, 5), 0)
    msg = convert.array_to_compressed(smooth, fmt)
    out = convert.message_to_array(msg, "rgb8")
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth).max() <= (0 if fmt == "png" else 8)
    assert convert.message_to_array(msg, "mono8").shape == smooth.shape[:2]


GOOD = dict(h=4, w=5, enc="bgr8", step=15, data=b"\0" * 60)


@pytest.mark.parametrize("change,reason", [
    (dict(enc="yuv_weird"), "unknown_encoding"),
    (dict(enc=""), "unknown_encoding"),
    (dict(h=0, data=b""), "zero_size"),
    (dict(w=0, step=0, data=b""), "zero_size"),
    (dict(h=100000, data=b""), "too_large"),
    (dict(w=9000, step=27000, data=b""), "too_large"),
    (dict(step=14), "bad_step"),
    (dict(data=b"\0" * 59), "size_mismatch"),
    (dict(data=b"\0" * 61), "size_mismatch"),
    (dict(step=16), "size_mismatch"),
])
def test_malformed_raw_images_raise_one_reason(change, reason):
    args = dict(GOOD, **change)
    msg = _msg(args["h"], args["w"], args["enc"], args["step"], args["data"])
    with pytest.raises(ConversionError) as info:
        convert.image_to_array(msg)
    assert info.value.reason == reason
    assert info.value.reason in convert.REASONS


def test_big_endian_16bit_refused():
    msg = _msg(2, 2, "mono16", 4, b"\0" * 8, bigendian=1)
    with pytest.raises(ConversionError) as info:
        convert.image_to_array(msg)
    assert info.value.reason == "bad_endianness"


@pytest.mark.parametrize("data,reason", [(b"", "zero_size"), (b"not a jpeg at all", "decode_failed")])
def test_malformed_compressed(data, reason):
    msg = CompressedImage()
    msg.format = "jpeg"
    msg.data = data
    with pytest.raises(ConversionError) as info:
        convert.message_to_array(msg)
    assert info.value.reason == reason


@pytest.mark.parametrize("h,w,step,n,reason", [
    (3, 3, 9, 5, "size_mismatch"),      # 5 bytes for 3 rows of 9
    (1, 1, 3, 3, None),                 # consistent: converts
    (2, 2, 1, 2, "bad_step"),           # step shorter than a row
    (8193, 1, 3, 8193 * 3, "too_large"),
])
def test_garbage_header_fields_give_exactly_one_reason(h, w, step, n, reason):
    msg = _msg(h, w, "rgb8", step, b"\1" * n)
    if reason is None:
        assert convert.image_to_array(msg).tolist() == [[[1, 1, 1]]]
        return
    with pytest.raises(ConversionError) as info:
        convert.image_to_array(msg)
    assert info.value.reason == reason


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "mono8", "bayer_rggb8"])
def test_roi_conversion_equals_crop_of_full_conversion(encoding):
    src = {"bgr8": RGB[..., ::-1], "rgb8": RGB, "mono8": RGB[..., 0], "bayer_rggb8": RGB[..., 1],
           "bgra8": np.dstack([RGB[..., ::-1], RGB[..., 0]])}[encoding]
    msg = convert.array_to_image(np.ascontiguousarray(src), encoding)
    full = convert.image_to_array(msg, "rgb8")
    img, box = convert.message_to_roi(msg, "rgb8", (2, 1, 5, 4))
    assert box == (2, 1, 5, 4)
    np.testing.assert_array_equal(img, full[1:5, 2:7])


def test_roi_is_clipped_to_the_frame_and_empty_means_whole_frame():
    msg = convert.array_to_image(RGB, "rgb8")  # 9 wide, 7 high
    img, box = convert.message_to_roi(msg, "rgb8", (6, 4, 10, 10))
    assert box == (6, 4, 3, 3)
    np.testing.assert_array_equal(img, RGB[4:7, 6:9])
    img, box = convert.message_to_roi(msg, "rgb8", ())
    assert box == (0, 0, 9, 7) and img.shape == (7, 9, 3)
    assert np.shares_memory(img, np.frombuffer(msg.data, np.uint8))  # rgb8 -> rgb8: a view


def test_roi_outside_the_frame_is_one_conversion_error():
    msg = convert.array_to_image(RGB, "rgb8")
    with pytest.raises(ConversionError) as info:
        convert.message_to_roi(msg, "rgb8", (20, 0, 5, 5))
    assert info.value.reason == "roi_outside"
    assert str(info.value) == "roi_outside: roi (20, 0, 5, 5) lies outside the 9x7 frame"


def test_compressed_roi_is_cut_after_decoding():
    msg = convert.array_to_compressed(RGB, "png")
    img, box = convert.message_to_roi(msg, "rgb8", (2, 1, 5, 4))
    assert box == (2, 1, 5, 4)
    np.testing.assert_array_equal(img, RGB[1:5, 2:7])  # png is lossless
    assert convert.message_size(msg) == (7, 9)  # from the PNG header, not decoded
