"""Plain-torch encoders: output shapes, width inference, fusion; no torchvision."""
import subprocess
import sys

import pytest
import torch

from multimodal_sched import models


@pytest.mark.parametrize("make, x, dim", [
    (lambda: models.resnet18_audio(width=4), torch.randn(2, 1, 32, 40), 32),
    (lambda: models.resnet18_audio(width=4, small_input=True), torch.randn(2, 1, 8, 8), 32),
    (lambda: models.resnet18_visual(width=4), torch.randn(2, 3, 3, 32, 32), 32),   # (batch, frames, 3, H, W)
    (lambda: models.resnet18_visual(width=4), torch.randn(2, 3, 32, 32), 32),      # a single frame
    (lambda: models.CNN4(3, 8), torch.randn(2, 3, 8, 8), 16),
    (lambda: models.MLP(10, (12, 6)), torch.randn(2, 10), 6),
])
def test_encoders_return_2d_embeddings(make, x, dim):
    enc = make()
    assert enc.out_dim == dim
    assert models.infer_out_dim(enc, x) == dim
    assert enc(x).shape == (2, dim)


def test_resnet18_has_18_weight_layers():
    enc = models.ResNet18(3, width=4)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert len(convs) == 17                       # + the classifier head = 18


def test_frame_pooling_is_mean_over_frames():
    enc = models.resnet18_visual(width=4).eval()
    x = torch.randn(1, 2, 3, 16, 16)
    pooled = enc(x)
    per_frame = torch.stack([enc(x[:, i]) for i in range(2)]).mean(0)
    assert torch.allclose(pooled, per_frame, atol=1e-5)


def test_default_encoder_by_shape_and_fusions():
    assert isinstance(models.default_encoder((3, 8, 8)), models.CNN4)
    assert isinstance(models.default_encoder((17,)), models.MLP)
    z1, z2 = torch.randn(4, 5), torch.randn(4, 7)
    assert models.ConcatFusion(5, 7, 3)(z1, z2).shape == (4, 3)
    s = models.SumFusion(5, 7, 3)
    assert torch.allclose(s(z1, z2), s.fc1(z1) + s.fc2(z2))
    with pytest.raises(ValueError, match="2-D"):
        models.infer_out_dim(torch.nn.Identity(), torch.randn(2, 3, 4))


def test_package_never_imports_torchvision_and_fastpid_never_imports_it():
    code = ("import sys, multimodal_sched, multimodal_sched.runner, multimodal_sched.models; "
            "assert 'torchvision' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
    import pathlib
    import fastpid

    src = "\n".join(p.read_text() for p in pathlib.Path(fastpid.__file__).parent.rglob("*.py"))
    assert "multimodal_sched" not in src


def test_python_dash_m_entry_point_rejects_bad_config():
    out = subprocess.run([sys.executable, "-m", "multimodal_sched", "run", "--dataset", "nope", "--out", "/nonexistent/x"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "unknown dataset" in out.stderr
