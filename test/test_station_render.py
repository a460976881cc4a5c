"""The station renderer: the nominal view matches what the node's preprocessing makes of the
station scene's frames, augmentation is seeded and stays in range, bad batches are refused."""
import numpy as np
import pytest
import torch

from vip_perception.data.station_render import NOMINAL_BELT, StationAugment, render_station


@pytest.fixture(scope="module")
def garments():
    from vip_perception.data import load_fashion_mnist

    ds = load_fashion_mnist("test")
    return torch.as_tensor(ds.images[:64, ..., 0]), ds


def test_nominal_matches_the_station_scene_after_preprocessing(garments):
    """Scene frame -> station roi -> Bank.preprocess-style area resize to 64x64 is what the
    bank is validated on: mean absolute difference under 3 grey levels, per garment."""
    from vip_perception.data.image_folder import to_model_array
    from vip_perception.data.synthetic_scene import ConveyorScene, SceneConfig

    items, ds = garments
    scene = ConveyorScene(SceneConfig(width=640, height=480, noise_std=2.0), images=ds.images[..., 0],
                          labels=ds.labels)
    x, y, w, h = scene.station_roi()
    for index in (0, 9, 18):  # resting at the station (dwell 6, period 9)
        frame = scene.frame(index)
        assert frame.at_station
        crop = frame.image[y:y + h, x:x + w]  # (480, 480, 3)
        camera = to_model_array(crop, 64, 64, 1)[..., 0].astype(np.float32)
        rendered = render_station(torch.as_tensor(ds.images[frame.item:frame.item + 1, ..., 0]), 64)[0, 0].numpy()
        diff = np.abs(camera - rendered)
        assert diff.mean() < 3.0, f"frame {index}: mean |camera - nominal| {diff.mean():.2f} grey levels"
        assert np.corrcoef(camera.ravel(), rendered.ravel())[0, 1] > 0.99


def test_nominal_is_deterministic_and_fills_the_crop(garments):
    items, _ = garments
    a, b = render_station(items, 64), render_station(items, 64)
    assert a.shape == (64, 1, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert float(a.min()) == pytest.approx(NOMINAL_BELT)  # the belt shows where the garment is dark
    assert float(a.max()) <= 255.0


def test_augmentation_is_seeded_varied_and_in_range(garments):
    items, _ = garments
    aug = StationAugment()
    one = render_station(items, 48, aug, torch.Generator().manual_seed(3))
    two = render_station(items, 48, aug, torch.Generator().manual_seed(3))
    other = render_station(items, 48, aug, torch.Generator().manual_seed(4))
    assert torch.equal(one, two)
    assert not torch.equal(one, other)
    assert float(one.min()) >= 0.0 and float(one.max()) <= 255.0
    nominal = render_station(items, 48)
    # the camera's conditions move the image a lot, but keep the garment: correlated with nominal
    corr = [float(np.corrcoef(n.ravel(), o.ravel())[0, 1]) for n, o in zip(nominal.numpy(), one.numpy())]
    assert float(torch.mean((one - nominal).abs())) > 5.0
    assert np.median(corr) > 0.3


def test_identity_augmentation_reproduces_the_nominal_garment(garments):
    """With every range collapsed to 'no change', the augmented path draws the nominal garment."""
    items, _ = garments
    none = StationAugment(scale=(1.0, 1.0), shift=0.0, rotate_deg=0.0, flip=0.0, gain=(1.0, 1.0),
                          belt=(NOMINAL_BELT, NOMINAL_BELT), slat_contrast=(0.0, 0.0), gradient=0.0,
                          blur_probability=0.0, noise_std=(0.0, 0.0))
    got, nominal = render_station(items, 64, none, torch.Generator().manual_seed(0)), render_station(items, 64)
    # identical inside; the outermost pixel ring differs (grid_sample pads with belt, resize clamps)
    assert torch.allclose(got[..., 1:-1, 1:-1], nominal[..., 1:-1, 1:-1], atol=1e-3)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"items must be \(B, H, W\)"):
        render_station(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 64)
    with pytest.raises(ValueError, match="size must be >= 8"):
        render_station(torch.zeros(2, 28, 28, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="StationAugment.gain"):
        StationAugment(gain=(1.2, 0.5))
