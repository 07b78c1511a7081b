"""The method registry: a method added from outside the package runs through `kd_run`; `--set` and `--list-methods`;
resuming checks the objective's whole configuration; the registry is the one place that lists the methods.

Run with `pytest tests/test_registry.py` (about a minute on two cores).
"""
import ast, contextlib, io, re, subprocess, sys
from dataclasses import dataclass
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from kd_nbdev.data import load_cifar10
from kd_nbdev.models import DeepNN, LightNN
from kd_nbdev.training import fit
from kd_nbdev.params import param, weight
from kd_nbdev.methods.base import Objective
from kd_nbdev.methods.registry import Method, register, methods
from kd_nbdev.methods.kd import SoftTargetKD
from kd_nbdev.experiments import kd_run
from kd_nbdev.record import read_record

PKG = Path(__file__).parents[1]/'kd_nbdev'
KD_RUN = [sys.executable, '-c', 'from kd_nbdev.experiments import main; main()']
SMALL = ['--data', 'sample', '--device', 'cpu', '--train-size', '256', '--test-size', '100', '--epochs', '1', '--quiet']


@dataclass
class ConfidenceConfig:
    conf_weight: float = param(0.3, "weight of the pull towards the teacher's confidence", weight)
    ce_weight: float = param(0.7, 'weight of cross-entropy', weight)

class MatchConfidence(Objective):
    "A toy method: the student's top probability pulled towards the teacher's."
    Config, weighted_by, needs_teacher = ConfidenceConfig, {'conf': 'conf_weight'}, True
    def terms(self, student, batch, teacher):
        top = lambda z: z.softmax(1).max(1).values
        return {'conf': F.mse_loss(top(student.logits), top(teacher.logits))}


def test_a_method_registered_here_runs_through_kd_run(tmp_path):
    register(Method('toyconf', 'toy', ConfidenceConfig, MatchConfidence), replace=True)
    assert 'toyconf' in [m.name for m in methods()]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        rec = kd_run([*SMALL, '--experiments', 'teacher,student_ce,student_toyconf', '--set', 'toyconf.conf_weight=0.5',
                      '--out', tmp_path/'run'])
    assert list(rec.runs) == ['teacher', 'student_ce', 'student_toyconf']
    row = rec.runs['student_toyconf']['42']['history'][0]
    assert {'conf', 'ce', 'loss'} <= set(row) and abs(row['loss'] - (0.5 * row['conf'] + 0.7 * row['ce'])) < 1e-4
    saved = read_record(tmp_path/'run'/'results.json')
    assert saved.settings['methods']['toyconf'] == {'conf_weight': 0.5, 'ce_weight': 0.7}
    assert '| student_toyconf |' in printed.getvalue()


def test_resuming_checks_the_objectives_whole_configuration(tmp_path):
    "A checkpoint made with T=5 is not resumed by a run with T=2 (it was, when only the loss weights were fingerprinted)."
    data = load_cifar10('sample').subset(256, 100)
    torch.manual_seed(0); teacher = DeepNN()
    run = lambda T, ckpt: (torch.manual_seed(42),
                           fit(LightNN(), data, SoftTargetKD(T=T), teacher=teacher, epochs=2, device='cpu', progress=False,
                               checkpoint=ckpt, log=lambda m: None))[1]
    with_t5 = run(5., tmp_path/'kd.pt')
    with_t2 = run(2., tmp_path/'kd.pt')  # same file: must not return the T=5 history
    fresh_t2 = run(2., None)
    losses = lambda h: [r['loss'] for r in h]
    assert losses(with_t2) != losses(with_t5)
    assert losses(with_t2) == losses(fresh_t2)


def kd_run_process(*args, cwd):
    return subprocess.run([*KD_RUN, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)

def test_list_methods_prints_each_method_and_its_parameters(tmp_path):
    p = kd_run_process('--list-methods', cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    builtin = [m for m in methods() if m.objective.__module__.startswith('kd_nbdev.')]  # this process registered a toy too
    assert [l.split()[0] for l in lines] == [m.experiment for m in builtin] and len(lines) >= 4
    kd_line = next(l for l in lines if l.startswith('student_kd '))
    assert 'kd.T=5.0' in kd_line and 'kd.soft_weight=0.5' in kd_line and 'kd.ce_weight=0.5' in kd_line

def test_set_changes_a_methods_parameter(tmp_path):
    p = kd_run_process(*SMALL, '--experiments', 'teacher,student_kd', '--set', 'kd.T=2', '--set', 'kd.soft_weight=0.25',
                       '--out', 'run', cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rec = read_record(tmp_path/'run'/'results.json')
    assert rec.settings['methods']['kd'] == {'T': 2.0, 'soft_weight': 0.25, 'ce_weight': 0.5}
    assert rec.command.endswith('--set kd.T=2 --set kd.soft_weight=0.25 --out run')

@pytest.mark.parametrize('assignment, says', [
    ('nosuch.T=2', "unknown method 'nosuch'"),
    ('kd.temperature=2', "kd has no parameter 'temperature'; its parameters: T, soft_weight, ce_weight"),
    ('kd.T=warm', "kd.T takes a number, not 'warm'"),
    ('kd.T=-1', 'kd.T=-1.0 is refused: T must be a positive number'),
    ('regressor.kernel=5', 'regressor.kernel=5 is refused: kernel must be one of 2, 3'),
    ('kd.T', '--set takes method.parameter=value'),
])
def test_a_wrong_set_is_refused_with_one_line_before_training(assignment, says, tmp_path):
    p = kd_run_process(*SMALL, '--set', assignment, '--out', 'run', cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('kd_run: error: ') and says in lines[0], p.stderr
    assert not (tmp_path/'run').exists()


# reference.py is the tutorial's own procedure, kept apart from the registry on purpose (it is the benchmark's baseline)
def _package_modules(): return [p for p in PKG.rglob('*.py') if p.name not in ('_modidx.py', 'reference.py')]

def test_the_registry_is_the_one_place_that_names_a_method():
    "The string student_kd stands at most twice in the package (it was in about eight places)."
    count = sum(p.read_text().count('student_kd') for p in _package_modules())
    assert count <= 2, count

def test_method_modules_import_nothing_of_the_training_loop():
    for p in (PKG/'methods').glob('*.py'):
        tree = ast.parse(p.read_text())
        imported = {n.module or '' for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
                   {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(re.search(r'(^|\.)(training|run|experiments)$', m) for m in imported), (p.name, imported)
