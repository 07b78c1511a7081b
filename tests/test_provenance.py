"""Every number traceable to its run: a new `kd_run` writes, in `results.json`, the code's version and commit, the
libraries' versions, the data file's sha256, every setting, the precision, threads and device (with the CPU's or
GPU's name), and the adapter each method built; a report made from the run (`kd_leaderboard`) carries them on and
says who made it.

Run with `pytest tests/test_provenance.py` (half a minute on two cores).
"""
import hashlib, json, os, re, subprocess, sys
from pathlib import Path
import torch
from kd_nbdev.data import SAMPLE_PATH
from kd_nbdev.record import device_name

ENV = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
ROOT = Path(__file__).parents[1]


def test_results_json_says_where_its_numbers_came_from(tmp_path):
    # a ResNet-18 teacher compared at layer2 (16x16 maps) with LightNN's 8x8 features: the methods build adapters
    cmd = [sys.executable, '-c', 'from kd_nbdev.experiments import main; main()', '--data', 'sample', '--device', 'cpu',
           '--train-size', '128', '--test-size', '50', '--epochs', '1', '--teacher-model', 'resnet18', '--teacher-layer', 'layer2',
           '--experiments', 'teacher,student_ce,student_regressor,student_at', '--set', 'kd.T=3', '--out', tmp_path/'run', '--quiet']
    p = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr
    rec = json.loads((tmp_path/'run'/'results.json').read_text())
    prov = rec['provenance']
    assert prov['package'] and prov['torch'] == torch.__version__ and prov['cuda'] == torch.version.cuda and prov['python']
    assert prov['numpy'] == __import__('numpy').__version__ and rec['torch'] == torch.__version__
    if (ROOT/'.git').exists():  # run from a clone: the commit it ran
        head = subprocess.run(['git', '-C', ROOT, 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip()
        assert prov['commit'] == head and isinstance(prov['dirty'], bool)
    assert prov['data_sha256'] == hashlib.sha256(Path(SAMPLE_PATH).read_bytes()).hexdigest()
    assert rec['settings']['methods']['kd']['T'] == 3 and rec['settings']['optimizer'] == 'adam' and rec['settings']['recipe'] == 'tutorial'
    assert rec['precision'] in ('fp32', 'bf16') and rec['threads'] and rec['device'].startswith('cpu (')
    cpu = re.fullmatch(r'cpu \((.+), (\d+) threads\)', rec['device'])  # the CPU's name and the threads PyTorch used
    assert cpu and int(cpu.group(2)) == rec['threads'] and cpu.group(1) == re.fullmatch(r'cpu \((.+), \d+ threads\)', device_name(torch.device('cpu'))).group(1)
    assert rec['objectives']['student_at']['class'] == 'AttentionTransfer' and rec['objectives']['student_at']['weights'] == {'at': 1000.0, 'ce': 1.0}
    assert rec['objectives']['student_regressor']['adapter'] == ("a trainable 3x3 conv from the student's 16 channels to the teacher's 128; "
                                                              'average-pool the maps to 8x8 (student 8x8, teacher 16x16)')
    assert rec['objectives']['student_at']['adapter'] == 'average-pool the maps to 8x8 (student 8x8, teacher 16x16)'
    assert rec['objectives']['student_regressor']['teacher_layers'] == ['layer2']

    # a report made from the run carries its origin on, and says which command, commit and machine made the report
    cmd = [sys.executable, '-c', 'from kd_nbdev.leaderboard import main; main()', '--run', tmp_path/'run', '--out', tmp_path/'report']
    p = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    lb = json.loads((tmp_path/'report'/'leaderboard.json').read_text())
    assert (lb['provenance'], lb['settings'], lb['objectives'], lb['precision']) == (prov, rec['settings'], rec['objectives'], rec['precision'])
    assert lb['made_by']['commit'] == prov['commit'] and lb['made_by']['device'].startswith('cpu (') and lb['made_by']['torch'] == torch.__version__
