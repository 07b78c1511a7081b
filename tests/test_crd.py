"""CRD from the command line: its memory banks, normalisation constants and draws live across steps, in the checkpoint;
a run killed after its first epoch and resumed ends exactly as the uninterrupted run.

Run with `pytest tests/test_crd.py` (about a minute on two cores). As in test_recipes.py, the run that is stopped waits
at a named pause point (`KD_NBDEV_TEST_PAUSE`), so nothing depends on the machine's speed; it is killed with SIGKILL.
"""
import subprocess
import pytest
from test_recipes import KD_RUN, ENV, kill_at_pause, histories

# tiny sizes: 256 images, 2 epochs, 64 negatives in banks of 16 numbers per image
RUN = ['--data', 'sample', '--device', 'cpu', '--train-size', '256', '--test-size', '100', '--epochs', '2', '--batch-size', '64',
       '--experiments', 'teacher,student_crd', '--set', 'crd.nce_k=64', '--set', 'crd.feat_dim=16']


def history(out): return histories(out, 'student_crd')


@pytest.mark.interruption
def test_crd_killed_after_an_epoch_resumes_exactly(tmp_path):
    whole = subprocess.run([*KD_RUN, *RUN, '--quiet', '--out', tmp_path/'whole'], env=ENV, capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr
    rows = history(tmp_path/'whole')
    assert len(rows) == 2 and all(r['crd'] > 0 for r in rows)
    kill_at_pause([*KD_RUN, *RUN, '--quiet', '--out', tmp_path/'cut'], 'checkpoint student_crd_seed42 1', tmp_path/'paused')
    again = subprocess.run([*KD_RUN, *RUN, '--out', tmp_path/'cut', '--resume'], env=ENV, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert 'resuming after epoch 1' in again.stderr
    assert history(tmp_path/'cut') == rows


def test_crd_is_refused_under_torchrun_in_one_line_before_training(tmp_path):
    from test_distributed import torchrun, finished
    rc, _, err = finished(torchrun('--experiments', 'teacher,student_crd', '--data', 'sample', '--device', 'cpu', '--train-size', '64',
                                   '--test-size', '32', '--epochs', '1', '--quiet', '--out', tmp_path/'ddp'))
    said = [l for l in err.splitlines() if l.startswith('kd_run: error:')]
    assert rc != 0 and said and 'student_crd trains in one process only' in said[0], err
    assert not (tmp_path/'ddp'/'teacher.pt').exists()  # refused before the teacher trained
