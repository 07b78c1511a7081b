"""Every number traceable to its run: a new `kd_run` writes, in `results.json`, the code's version and commit, the
libraries' versions, the data file's sha256, every setting, and the adapter each method built.

Run with `pytest tests/test_provenance.py` (half a minute on two cores).
"""
import hashlib, json, os, subprocess, sys
from pathlib import Path
import torch
from kd_nbdev.data import SAMPLE_PATH

ENV = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
ROOT = Path(__file__).parents[1]


def test_results_json_says_where_its_numbers_came_from(tmp_path):
    # a ResNet-18 teacher compared at layer2 (16x16 maps) with LightNN's 8x8 features: the methods build adapters
    cmd = [sys.executable, '-c', 'from kd_nbdev.experiments import main; main()', '--data', 'sample', '--device', 'cpu',
           '--train-size', '128', '--test-size', '50', '--epochs', '1', '--teacher-model', 'resnet18', '--teacher-layer', 'layer2',
           '--experiments', 'teacher,student_regressor,student_at', '--set', 'kd.T=3', '--out', tmp_path/'run', '--quiet']
    p = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr
    rec = json.loads((tmp_path/'run'/'results.json').read_text())
    prov = rec['provenance']
    assert prov['package'] and prov['torch'] == torch.__version__ and prov['cuda'] == torch.version.cuda and prov['python']
    if (ROOT/'.git').exists():  # run from a clone: the commit it ran
        head = subprocess.run(['git', '-C', ROOT, 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip()
        assert prov['commit'] == head and isinstance(prov['dirty'], bool)
    assert prov['data_sha256'] == hashlib.sha256(Path(SAMPLE_PATH).read_bytes()).hexdigest()
    assert rec['settings']['methods']['kd']['T'] == 3 and rec['settings']['optimizer'] == 'adam' and rec['settings']['recipe'] == 'tutorial'
    assert rec['precision'] in ('fp32', 'bf16') and rec['threads'] and rec['device'].startswith('cpu (')
    assert rec['objectives']['student_regressor']['adapter'] == ("a trainable 3x3 conv from the student's 16 channels to the teacher's 128; "
                                                              'average-pool the maps to 8x8 (student 8x8, teacher 16x16)')
    assert rec['objectives']['student_at']['adapter'] == 'average-pool the maps to 8x8 (student 8x8, teacher 16x16)'
    assert rec['objectives']['student_regressor']['teacher_layers'] == ['layer2']
