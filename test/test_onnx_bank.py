"""A bank's members on ONNX Runtime: the same predictions as PyTorch (ViP versions included)."""

import pytest
import torch

from vip_perception.backends import make_backend
from vip_perception.bank import load_bank
from vip_perception.vip import apply_vip

pytest.importorskip("onnxruntime")
torch.set_num_threads(1)

N_IMAGES = 300


def _images(bank) -> torch.Tensor:
    from vip_perception.data.fashion_mnist import load_fashion_mnist

    images = load_fashion_mnist("test").images[:N_IMAGES]  # (N, 28, 28) uint8
    return torch.cat([bank.preprocess(im) for im in images])  # (N, C, H, W)


@pytest.mark.timeout(300)
def test_members_predict_identically_on_onnxruntime(quick_bank):
    bank = load_bank(quick_bank)
    xs = _images(bank)
    for member in bank.members:
        for module in (member.module, apply_vip(member.module, "all").eval()):
            ort_run = make_backend("onnxruntime", module, xs[:1], threads=1)
            with torch.inference_mode():
                want = torch.cat([module(xs[i : i + 1]) for i in range(len(xs))]).argmax(1)
            got = torch.cat([ort_run(xs[i : i + 1]) for i in range(len(xs))]).argmax(1)
            assert torch.equal(got, want), f"{member.name}: {(got != want).sum()} predictions differ"
