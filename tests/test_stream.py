"""`kd_run --data FOLDER` streams a folder of class folders larger than its memory budget: worker processes decode the
images batch by batch, `--augment` augments them as in memory, the teacher runs live on every batch, and
`results.json` records that it streamed. On the same folder, streamed and in-memory runs give the same numbers.

Run with `pytest tests/test_stream.py` (about a minute on two cores).
"""
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest
from PIL import Image
from kd_nbdev.data import read_npz, SAMPLE_PATH

_script = shutil.which('kd_run', path=str(Path(sys.executable).parent)) or shutil.which('kd_run')
KD_RUN = [_script] if _script else [sys.executable, '-c', 'from kd_nbdev.experiments import main; main()']
ENV = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
RUN = ['--augment', '--epochs', '1', '--experiments', 'teacher,student_kd,student_at', '--device', 'cpu', '--threads', '1']


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "140 real CIFAR-10 images (the sample's first) as PNG files in class folders: 0.4 MB decoded."
    root, d = tmp_path_factory.mktemp('stream')/'folder', read_npz(SAMPLE_PATH)
    for split, x, y, n in (('train', d.x_train, d.y_train, 100), ('test', d.x_test, d.y_test, 40)):
        for i in range(n):
            p = root/split/d.classes[int(y[i])]; p.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(p/f'{i:05d}.png')
    return root


def kd_run(*args):
    p = subprocess.run([*KD_RUN, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def histories(out):
    r = json.loads((Path(out)/'results.json').read_text())
    return {e: [{k: v for k, v in row.items() if 'seconds' not in k} for row in s['42']['history']] for e, s in r['runs'].items()}


def test_a_folder_over_the_memory_budget_streams_with_a_live_teacher(folder, tmp_path):
    p = kd_run('--data', folder, '--memory-budget', '0.1', *RUN, '--out', tmp_path/'streamed')
    assert 'streamed images: the teacher runs on every batch' in p.stderr
    rec = json.loads((tmp_path/'streamed'/'results.json').read_text())
    assert rec['loading'] == {'streamed': True, 'workers': 2, 'reason': '0.4 MB of decoded images exceed the memory budget of 0.1 MB',
                              'images': 140, 'decoded_mb': 0.41, 'memory_budget_mb': 0.1}
    assert set(rec['runs']) == {'teacher', 'student_kd', 'student_at'}
    assert 'teacher_cache' not in rec['seconds']  # no cache was built: the teacher ran live
    # the same folder read into memory gives the same numbers, to the last bit
    kd_run('--data', folder, '--stream', 'no', *RUN, '--quiet', '--out', tmp_path/'memory')
    assert json.loads((tmp_path/'memory'/'results.json').read_text())['loading'] == {'streamed': False, 'decoded_mb': 0.41}
    assert histories(tmp_path/'streamed') == histories(tmp_path/'memory')


def test_stream_yes_is_refused_for_data_that_is_not_a_folder(tmp_path):
    p = subprocess.run([*KD_RUN, '--data', 'sample', '--stream', 'yes', '--experiments', 'student_ce', '--out', tmp_path/'r'],
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and '--stream yes reads a folder of class folders' in p.stderr
    assert 'Traceback' not in p.stderr
