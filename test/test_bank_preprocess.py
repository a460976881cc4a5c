"""Bank.preprocess: the area-average matrix path agrees with OpenCV's INTER_AREA within the
stated tolerance (half a grey level for grey input; one for colour converted to grey, where
the old path rounded twice), on the shipped 28x28 grey bank and a 3-channel spec."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from vip_perception.bank import load_bank
from vip_perception.bank.bank import area_weights
from vip_perception.data.image_folder import to_model_array

BANK = "config/banks/fashion_mnist"


def _reference(bank, image):
    """The uint8 INTER_AREA path preprocess used before: (C, H, W) float32 normalised."""
    s = bank.input_spec
    arr = to_model_array(image, s.height, s.width, s.channels).transpose(2, 0, 1).astype(np.float32)
    scale, shift = bank._affine
    return arr * scale + shift


@pytest.fixture(scope="module")
def bank():
    return load_bank(BANK)


SHAPES = [(480, 480), (480, 640), (37, 53), (29, 28), (30, 31, 1), (480, 480, 3), (101, 29, 3),
          (480, 640, 4), (28, 28), (10, 12), (12, 40, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_inter_area_within_tolerance(bank, shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    x = bank.preprocess(image)
    assert tuple(x.shape) == (1, 1, 28, 28) and x.dtype.is_floating_point
    grey_levels = 1.0 if len(shape) == 3 and shape[2] >= 3 else 0.5
    tol = (grey_levels + 1e-3) / 255 / min(bank.input_spec.std)
    np.testing.assert_allclose(x.numpy()[0], _reference(bank, image), rtol=0, atol=tol)


def test_three_channel_spec(bank):
    rgb = replace(bank, input_spec=replace(bank.input_spec, channels=3, mean=[0.4, 0.5, 0.6],
                                           std=[0.2, 0.25, 0.3]))
    image = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    x = rgb.preprocess(image)
    assert tuple(x.shape) == (1, 3, 28, 28)
    np.testing.assert_allclose(x.numpy()[0], _reference(rgb, image), rtol=0, atol=0.501 / 255 / 0.2)


@pytest.mark.parametrize("n_in, n_out", [(480, 28), (640, 28), (28, 28), (56, 28), (100, 7), (29, 28)])
def test_area_weights_are_inter_area(n_in, n_out):
    w = area_weights(n_in, n_out)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)  # an average of each output's span
    line = np.random.default_rng(0).random((1, n_in)).astype(np.float32)
    ref = cv2.resize(line, (n_out, 1), interpolation=cv2.INTER_AREA)[0]
    np.testing.assert_allclose(w @ line[0], ref, atol=1e-5)


def test_bad_images_are_still_refused(bank):
    with pytest.raises(ValueError):
        bank.preprocess(np.zeros((40, 40, 2), np.uint8))
    with pytest.raises(ValueError):
        bank.preprocess(np.zeros((40, 40), np.float32))


def test_the_area_products_run_on_one_blas_thread_and_restore_it(bank, monkeypatch):
    """Beside a busy process a 2-thread OpenBLAS call waits for a scheduler slice now and then;
    the products run on one thread, and NumPy's setting is back afterwards."""
    from threadpoolctl import threadpool_info

    from vip_perception.bank import bank as bank_module

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    blas, seen = bank_module._numpy_blas(), []

    class Spy:
        def limit(self, limits):
            seen.append(limits)
            return blas.limit(limits=limits)

    monkeypatch.setattr(bank_module, "_numpy_blas", lambda: Spy())
    bank.preprocess(np.zeros((480, 480, 3), np.uint8))
    assert seen == [1]
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
