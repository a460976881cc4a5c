"""Fuzzing the conversion layer: nothing but a counted ConversionError ever leaves it, and
every image it returns is one preprocessing accepts. A short Hypothesis run here;
`vip-perception fuzz --cases 10000` is the long one (benchmarks/fuzz.json)."""
from __future__ import annotations

import array
import json

import numpy as np
import pytest

pytest.importorskip("hypothesis")
cv2 = pytest.importorskip("cv2")

from vip_perception import cli  # noqa: E402
from vip_perception.ros import convert  # noqa: E402
from vip_perception.ros.tools import fuzz  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def test_short_fuzz_run_has_no_escapes():
    tally = fuzz.fuzz(cases=300, seed=1)
    report = tally.report()
    assert report["escapes"] == 0, report["escape_examples"]
    assert report["cases"] == 300
    assert set(report["reasons"]) <= set(convert.REASONS)
    assert report["converted_ok"] > 0 and report["rejected"] > 0  # both sides exercised
    assert report["well_formed_rejected"] == {}


def _raw(h, w, enc, step=None, n=None, big=0, data=None):
    bpp = convert.ENCODINGS[enc].bytes_per_pixel if enc in convert.ENCODINGS else 3
    step = w * bpp if step is None else step
    n = h * step if n is None else n
    data = bytes(range(256)) * (n // 256 + 1) if data is None else data
    return fuzz.ImageMsg(h, w, enc, big, step, array.array("B", data[:n]))


def _jpeg(shape=(20, 30, 3)):
    return cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, shape, np.uint8))[1].tobytes()


def _png(shape=(20, 30, 3)):
    return cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, shape, np.uint8))[1].tobytes()


@pytest.mark.parametrize("msg, expected", [
    (_raw(4, 5, "bgr8"), "ok"),
    (_raw(4, 5, "mono16", step=11), "ok"),                    # odd step, 16-bit: copied, viewed
    (_raw(4, 5, "bayer_rggb8"), "ok"),
    (_raw(4, 5, "rgba8", step=23), "ok"),                     # padded rows
    (_raw(4, 5, "mono16", big=1), "bad_endianness"),
    (_raw(4, 5, "bgr8", step=14), "bad_step"),
    (_raw(4, 5, "bgr8", n=59), "size_mismatch"),
    (_raw(4, 5, "bgr8", n=61), "size_mismatch"),
    (_raw(0, 5, "bgr8"), "zero_size"),
    (_raw(2**32 - 1, 2**32 - 1, "bgr8", n=16), "too_large"),
    (_raw(4, 5, "yuv422"), "unknown_encoding"),
    (_raw(4, 5, ""), "unknown_encoding"),
    (fuzz.CompressedMsg("jpeg", b""), "zero_size"),
    (fuzz.CompressedMsg("jpeg", _jpeg()), "ok"),
    (fuzz.CompressedMsg("png", array.array("B", _png((9, 7))),), "ok"),
    (fuzz.CompressedMsg("jpeg", _jpeg()[:40]), "decode_failed"),   # truncated JPEG
    (fuzz.CompressedMsg("png", _png()[:30]), "decode_failed"),     # truncated PNG
    (fuzz.CompressedMsg("", np.random.default_rng(3).bytes(999)), "decode_failed"),
    (fuzz.CompressedMsg("png", fuzz._png_header_only(9000, 3, 0)), "decode_failed"),
])
@pytest.mark.parametrize("target", ["rgb8", "mono8"])
def test_corner_cases_map_to_one_reason(msg, expected, target):
    out = fuzz.check_case(fuzz.Case(msg, target, (0.25, 0.25, 0.5, 0.5), "corner", False))
    if expected == "decode_failed" and out.result == "too_large":
        expected = "too_large"  # a decoder that reads the header first says so: fine too
    assert out.result == expected, out.escape


def test_the_run_hands_conversion_the_real_sensor_msgs_classes(monkeypatch):
    """By default every case whose payload an rclpy message can hold is a real sensor_msgs
    Image / CompressedImage; only bytes / bytearray payloads stay stand-ins."""
    from sensor_msgs.msg import CompressedImage, Image

    seen = []
    validate = convert.validate_message
    monkeypatch.setattr(convert, "validate_message", lambda m: (seen.append(m), validate(m))[1])
    report = fuzz.fuzz(cases=120, seed=2).report()
    assert report["escapes"] == 0, report["escape_examples"]
    classes = report["message_classes"]
    assert classes["sensor_msgs/Image"] > 0 and classes["sensor_msgs/CompressedImage"] > 0, classes
    assert set(classes) <= {"sensor_msgs/Image", "sensor_msgs/CompressedImage",
                            "stand-in/ImageMsg", "stand-in/CompressedMsg"}
    assert len(seen) == 120
    for m in seen:
        real = isinstance(m, (Image, CompressedImage))
        assert real == isinstance(m.data, array.array), type(m)  # stand-ins: bytes payloads only
        assert real or isinstance(m.data, (bytes, bytearray))
    stand_ins = fuzz.fuzz(cases=20, seed=2, real=False).report()["message_classes"]
    assert set(stand_ins) <= {"stand-in/ImageMsg", "stand-in/CompressedMsg"}


def test_real_message_keeps_every_hostile_header_value():
    msg = fuzz.to_real_message(_raw(2**32 - 1, 2**32 - 1, "rgb8\0", step=2**32 - 1, big=255, n=16))
    assert type(msg).__module__.startswith("sensor_msgs")
    assert (msg.height, msg.width, msg.step, msg.is_bigendian, msg.encoding) == (
        2**32 - 1, 2**32 - 1, 2**32 - 1, 255, "rgb8\0")
    kept = fuzz.CompressedMsg("png", b"\x89PNG")
    assert fuzz.to_real_message(kept) is kept  # bytes: the real class would make it an array


def test_cli_writes_the_report(tmp_path):
    path = tmp_path / "fuzz.json"
    assert cli.main(["fuzz", "--cases", "60", "--json", str(path), "--bank", "none"]) == 0
    report = json.loads(path.read_text())
    assert report["cases"] == 60 and report["escapes"] == 0
    assert sum(report["reasons"].values()) + report["converted_ok"] == 60
    assert report["real_messages"] is True and report["message_classes"].get("sensor_msgs/Image", 0) > 0


def test_compressed_bomb_is_rejected_before_decoding(monkeypatch):
    calls = []
    monkeypatch.setattr(convert.cv2, "imdecode", lambda *a: calls.append(a) or None)
    bomb = fuzz.CompressedMsg("png", fuzz._png_header_only(20000, 20000, 0))
    with pytest.raises(convert.ConversionError) as err:
        convert.validate_message(bomb)
        convert.message_to_array(bomb, "rgb8")
    assert err.value.reason == "too_large"
    assert calls == [], "the payload was handed to the decoder"
