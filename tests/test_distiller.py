"""`Distiller` in the user's own code: the README's loop example (run as written, and with KD instead of AT, and under
`torch.autocast`), the Lightning example, and the one-line refusals a new user meets first.

Run with `pytest tests/test_distiller.py` (about half a minute on two cores).
"""
import json, re
from pathlib import Path
import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
README_CELL = 'a7d15e11'  # the index notebook's loop example, which README.md shows


def readme_loop() -> str:
    "The source of the README's loop example, from the notebook README.md is rendered from."
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    return ''.join(next(c for c in nb['cells'] if c.get('id') == README_CELL)['source'])


def run_loop(src: str) -> list:
    torch.manual_seed(0)
    ns = {}
    exec(compile(src, 'README loop', 'exec'), ns)
    return ns['losses']


def falls(losses: list) -> bool: return sum(losses[-4:]) < sum(losses[:4])


def test_readme_loop_with_a_feature_method_on_a_layer_named_by_path():
    src = readme_loop()
    assert "Distiller(teacher, student, 'at', teacher_layer='layer2')" in src and 'DataLoader(' in src
    assert len(src.strip().splitlines()) <= 18  # about ten lines of loop, after the imports and the networks
    losses = run_loop(src)
    assert falls(losses), losses


def test_readme_loop_with_kd():
    src = readme_loop().replace("'at', teacher_layer='layer2'", "'kd'")
    assert falls(run_loop(src))


def test_readme_loop_under_autocast_bf16():
    src, n = re.subn(r"\n(\s+)loss, terms = distiller\(images, labels\)",
                     r"\n\1with torch.autocast('cpu', dtype=torch.bfloat16): loss, terms = distiller(images, labels)", readme_loop())
    assert n == 1
    losses = run_loop(src)
    assert all(torch.isfinite(torch.tensor(losses))) and falls(losses), losses


def networks():
    from torchvision.models import resnet18
    torch.manual_seed(0)
    student = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    return resnet18(weights=None, num_classes=10), student


def test_lightning_trains_a_distiller():
    L = pytest.importorskip('lightning')
    from torch.utils.data import DataLoader, TensorDataset
    from kd_nbdev import Distiller
    teacher, student = networks()

    class Lit(L.LightningModule):
        def __init__(self, distiller): super().__init__(); self.distiller = distiller
        def training_step(self, batch, i):
            loss, terms = self.distiller(*batch, progress=self.global_step / self.trainer.max_steps)
            return loss
        def configure_optimizers(self): return torch.optim.Adam(self.distiller.parameters(), lr=1e-3)

    lit = Lit(Distiller(teacher, student, 'regressor', teacher_layer='layer1', input_shape=(3, 32, 32)))
    before, t_before = [p.detach().clone() for p in lit.parameters()], [p.detach().clone() for p in teacher.parameters()]
    assert len(before) == len(list(student.parameters())) + 2  # the student's and the adapter's, not the teacher's
    data = TensorDataset(torch.randn(48, 3, 32, 32), torch.randint(0, 10, (48,)))
    trainer = L.Trainer(max_steps=3, accelerator='cpu', logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, DataLoader(data, batch_size=16))
    assert trainer.global_step == 3
    assert all(not torch.equal(a, b) for a, b in zip(before, lit.parameters()))  # student and adapter both trained
    assert all(torch.equal(a, b) for a, b in zip(t_before, teacher.parameters())) and not teacher.training


def test_refusals_are_one_line():
    from kd_nbdev import Distiller
    teacher, student = networks()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with pytest.raises(ValueError, match=r"dkd reads the training's progress") as e: Distiller(teacher, student, 'dkd')(x, y)
    assert '\n' not in str(e.value)
    with pytest.raises(ValueError, match=r"the teacher has no layer 'layer9'; its top-level modules are conv1, bn1, relu, maxpool, "
                                         r"layer1, layer2, layer3, layer4, avgpool, fc") as e:
        Distiller(teacher, student, 'at', teacher_layer='layer9')
    assert '\n' not in str(e.value)
