"""The contract every registered method keeps, checked by walking the registry: built from probed shapes the way a run
builds it, it gives a finite loss on a small batch, passes no gradient to the teacher's outputs, changes its resume
fingerprint when any one of its parameters changes, and records its adapter where it builds one. A method registered
here keeps it too. Two pairs of networks: the tutorial's, and a ResNet-18 teacher with the tutorial's student.

Run with `pytest tests/test_methods.py` (seconds, CPU).
"""
from dataclasses import dataclass, fields, replace
from functools import cache
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from kd_nbdev.config import Settings
from kd_nbdev.models import forward_with_features
from kd_nbdev.networks import CIFAR10_DIMS, make_teacher, make_student, run_layers
from kd_nbdev.params import ConfigError, param, weight, positive
from kd_nbdev.methods.base import Objective, Outputs, Batch, Shapes, match_maps
from kd_nbdev.methods.registry import Method, register, methods, get_method, check_config
from kd_nbdev.run import check_request
from kd_nbdev.store import fingerprint


@dataclass
class ProjectConfig:
    project_weight: float = param(0.5, "weight of the MSE between the projected student maps and the teacher's", weight)
    ce_weight: float = param(1., 'weight of cross-entropy', weight)
    scale: float = param(1., "the teacher's maps are multiplied by it", positive)

class Project(Objective):
    "A method registered outside the package, with an adapter: a trainable 1x1 conv from the student's channels to the teacher's."
    Config, weighted_by = ProjectConfig, {'project': 'project_weight'}
    needs_teacher = needs_hidden = True
    def __init__(self, config=None, shapes=Shapes(), **changes):
        super().__init__(config, shapes, **changes)
        self.project = nn.Conv2d((shapes.student or (16,))[0], (shapes.teacher or (32,))[0], 1)
    def describe_adapter(self, shapes):
        return f"1x1 conv from {(shapes.student or (16,))[0]} to {(shapes.teacher or (32,))[0]} channels"
    def terms(self, student, batch, teacher):
        s, t = match_maps(self.project(student.hidden), teacher.hidden * self.config.scale)
        return {'project': F.mse_loss(s, t)}

register(Method('project', 'project', ProjectConfig, Project, summary='a test method with an adapter'), replace=True)

PAIRS = {'tutorial': Settings(), 'resnet18': Settings(teacher_model='resnet18')}
NAMES = [m.name for m in methods()]


def test_every_builtin_method_is_walked():
    assert {'ce', 'kd', 'cosine', 'regressor', 'ce_kernel2', 'dkd', 'dist', 'logit_std', 'at', 'sp', 'pkt', 'rkd', 'nst', 'vid', 'cc', 'project'} <= set(NAMES)


@cache
def probed(pair: str) -> dict:
    "Each experiment's `Shapes`, probed by the checks a run makes before training."
    return check_request(['teacher', *[f'student_{n}' for n in NAMES]], PAIRS[pair])

@cache
def teacher_outputs(pair: str):
    "The teacher's logits and compared layer on a small batch (leaves that record any gradient that reaches them)."
    s = PAIRS[pair]
    torch.manual_seed(0)
    x = torch.randn(6, 3, *CIFAR10_DIMS['image_size'])
    layer = run_layers(s)[0]
    with torch.no_grad(): logits, feats = forward_with_features(make_teacher(s).eval(), x, (layer,))
    return x, logits, feats[layer]

def built(m: Method, pair: str, config=None) -> Objective:
    "The objective exactly as a run builds it: from the run's settings for the method and the probed shapes."
    s = PAIRS[pair]
    objective = m.make_objective(config or s.methods[m.name], probed(pair)[m.experiment])
    if m.needs_hidden: objective.student_layer, objective.teacher_layer = run_layers(s)[::-1]
    return objective


@pytest.mark.parametrize('pair', PAIRS)
@pytest.mark.parametrize('name', NAMES)
def test_a_finite_loss_and_no_gradient_to_the_teacher(name, pair):
    m, s = get_method(name), PAIRS[pair]
    objective = built(m, pair)
    x, t_logits, t_hidden = teacher_outputs(pair)
    t_logits, t_hidden = t_logits.clone().requires_grad_(), t_hidden.clone().requires_grad_()
    torch.manual_seed(0)
    student = make_student(m, s, CIFAR10_DIMS)
    s_logits, feats = forward_with_features(student, x, objective.student_layers)
    labels = torch.arange(len(x)) % 10
    total, terms = objective(Outputs(s_logits, feats.get(objective.student_layer), feats), Batch(labels, progress=0.5),
                             Outputs(t_logits, t_hidden, {objective.teacher_layer: t_hidden}) if m.needs_teacher else None)
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values()), terms
    assert list(terms)[-1] == 'ce' and set(terms) == set(objective.weights)  # the label term last, every term weighed
    assert torch.equal(total, sum(objective.weights[k] * v for k, v in terms.items()))
    total.backward()
    assert t_logits.grad is None and t_hidden.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def _changed(value):
    "Values to try instead of `value`, the first one its check accepts is used."
    if isinstance(value, bool): return [not value]
    if isinstance(value, int): return [value + 1, value - 1]
    return [value * 2, value / 2, value + 1]

@pytest.mark.parametrize('pair', PAIRS)
@pytest.mark.parametrize('name', NAMES)
def test_each_parameter_changes_the_resume_fingerprint(name, pair):
    m = get_method(name)
    config = PAIRS[pair].methods[m.name]
    key = fingerprint(built(m, pair).settings())  # what `fit` puts in a checkpoint's fingerprint
    for f in fields(config):
        for v in _changed(getattr(config, f.name)):
            other = replace(config, **{f.name: v})
            try: check_config(m, other)
            except ConfigError: continue
            assert fingerprint(built(m, pair, other).settings()) != key, f"{name}.{f.name}={v} leaves the fingerprint as it was"
            break
        else: pytest.fail(f"no other valid value found for {name}.{f.name}")


@pytest.mark.parametrize('pair', PAIRS)
@pytest.mark.parametrize('name', NAMES)
def test_an_adapter_is_recorded(name, pair):
    "An objective with trainable parts (an adapter between the layers) says so in its settings, sized for the shapes."
    objective = built(get_method(name), pair)
    if any(True for _ in objective.parameters()):
        assert objective.settings().get('adapter'), f"{name} builds an adapter but does not record it"
    if objective.adapter: assert objective.settings()['adapter'] == objective.describe_adapter(probed(pair)[f'student_{name}'])


def test_the_recorded_adapter_follows_the_shapes():
    shapes = probed('resnet18')
    assert '256' in built(get_method('regressor'), 'resnet18').settings()['adapter'] and shapes['student_regressor'].teacher[0] == 256
    assert built(get_method('project'), 'resnet18').settings()['adapter'] == '1x1 conv from 16 to 256 channels'
    assert '16→256→256→256' in built(get_method('vid'), 'resnet18').settings()['adapter']
    assert "the teacher's 16384 features" in built(get_method('cc'), 'resnet18').settings()['adapter']  # 256x8x8, flattened
    pooled = get_method('at').make_objective(shapes=Shapes((16, 8, 8), (256, 4, 4)))
    assert pooled.settings()['adapter'] == 'average-pool the maps to 4x4 (student 8x8, teacher 4x4)'
