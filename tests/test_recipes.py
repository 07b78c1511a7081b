"""Training recipes from the command line: a run stopped mid-schedule resumes on it exactly, the recipe is recorded,
bad recipe values are refused in one line before anything is written.

Run with `pytest tests/test_recipes.py` (about a minute on two cores). The run that is stopped waits at a named
pause point (`KD_NBDEV_TEST_PAUSE`), so nothing depends on the machine's speed; the child gets SIGINT's default
disposition, and is killed at the end whatever happens.
"""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
from kd_nbdev import store

_script = shutil.which('kd_run', path=str(Path(sys.executable).parent)) or shutil.which('kd_run')
KD_RUN = [_script] if _script else [sys.executable, '-c', 'from kd_nbdev.experiments import main; main()']
ENV = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
# SGD with weight decay on every parameter, a multistep schedule whose first milestone falls inside the second epoch,
# a warm-up, clipping: every piece of state a resumed run must restore (optimizer momentum, scheduler position)
RECIPE = ['--optimizer', 'sgd', '--lr', '0.05', '--weight-decay', '5e-4', '--decay-norms-and-biases', '--schedule', 'multistep',
          '--milestones', '0.5,0.8', '--warmup-epochs', '0.5', '--clip-grad-norm', '5', '--batch-size', '64']
RUN = ['--data', 'sample', '--device', 'cpu', '--train-size', '384', '--test-size', '100', '--epochs', '3',
       '--experiments', 'student_ce', *RECIPE]


def _default_sigint(): signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_at_pause(cmd:list, point:str, marker:Path):
    "Start `cmd`, wait until it reaches the named pause `point` (it then writes `marker` and waits), and SIGKILL it there."
    proc = subprocess.Popen(cmd, env={**ENV, store.PAUSE_VARIABLE: f'{point}={marker}'}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 900  # a hang guard, not a speed bound
        while not marker.exists():
            assert proc.poll() is None, 'the run ended before its pause point'
            assert time.monotonic() < deadline, 'the run never reached its pause point'
            time.sleep(0.05)
        proc.kill()
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        if proc.poll() is None: proc.kill(); proc.wait()


def histories(out, experiment:str='student_ce'):
    "The seed-42 history of `experiment` in the run `out`, without its timings (which differ from run to run)."
    res = json.loads((Path(out)/'results.json').read_text())
    return [{k: v for k, v in row.items() if 'seconds' not in k} for row in res['runs'][experiment]['42']['history']]


@pytest.mark.interruption
def test_a_run_killed_mid_schedule_resumes_exactly(tmp_path):
    whole = subprocess.run([*KD_RUN, *RUN, '--quiet', '--out', tmp_path/'whole'], env=ENV, capture_output=True, text=True, timeout=900)
    assert whole.returncode == 0, whole.stderr
    rows = histories(tmp_path/'whole')
    assert len({r['lr'] for r in rows}) == 3  # the rate changed at each epoch: warm-up, then a milestone
    kill_at_pause([*KD_RUN, *RUN, '--quiet', '--out', tmp_path/'cut'], 'checkpoint student_ce_seed42 1', tmp_path/'paused')
    again = subprocess.run([*KD_RUN, *RUN, '--out', tmp_path/'cut', '--resume'], env=ENV, capture_output=True, text=True, timeout=900)  # not quiet: it says where it resumes
    assert again.returncode == 0, again.stderr
    assert 'resuming after epoch 1' in again.stderr
    assert histories(tmp_path/'cut') == rows
    settings = json.loads((tmp_path/'whole'/'results.json').read_text())['settings']
    assert (settings['optimizer'], settings['schedule'], settings['milestones'], settings['clip_grad_norm']) == ('sgd', 'multistep', '0.5,0.8', 5.0)


@pytest.mark.parametrize('bad, says', [(['--lr', '-1'], 'lr=-1.0 is refused'), (['--schedule', 'nope'], "schedule=nope is refused"),
                                       (['--milestones', '2,1'], 'milestones=2,1 is refused'), (['--recipe', 'nope'], 'recipe=nope is refused')])
def test_a_bad_recipe_value_is_one_line_and_exit_2(bad, says, tmp_path):
    p = subprocess.run([*KD_RUN, '--data', 'sample', '--out', tmp_path/'run', *bad], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and says in p.stderr, p.stderr
    assert not (tmp_path/'run').exists()


def test_a_named_recipe_and_its_fields_overridden_are_recorded(tmp_path):
    "`--recipe cifar-sgd` gives the published recipe's fields; any option overrides one; results.json holds the whole recipe."
    base = ['--data', 'sample', '--device', 'cpu', '--train-size', '128', '--test-size', '50', '--experiments', 'student_ce', '--quiet']
    p = subprocess.run([*KD_RUN, *base, '--recipe', 'cifar-sgd', '--epochs', '3', '--out', tmp_path/'a'], env=ENV, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path/'a'/'results.json').read_text())['settings']
    assert (s['recipe'], s['optimizer'], s['lr'], s['momentum'], s['weight_decay'], s['decay_norms_and_biases'], s['batch_size'], s['epochs'],
            s['schedule'], s['milestones'], s['lr_factor']) == ('cifar-sgd', 'sgd', 0.05, 0.9, 5e-4, True, 64, 3, 'multistep', '0.625,0.75,0.875', 0.1)
    over = ['--optimizer', 'adamw', '--lr', '0.002', '--weight-decay', '0.01', '--schedule', 'onecycle', '--warmup-epochs', '0.5',
            '--label-smoothing', '0.1', '--clip-grad-norm', '2', '--batch-size', '32', '--epochs', '2', '--momentum', '0.8']
    p = subprocess.run([*KD_RUN, *base, '--recipe', 'cifar-sgd', *over, '--out', tmp_path/'b'], env=ENV, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path/'b'/'results.json').read_text())['settings']
    assert (s['optimizer'], s['lr'], s['weight_decay'], s['schedule'], s['warmup_epochs'], s['label_smoothing'], s['clip_grad_norm'],
            s['batch_size'], s['epochs'], s['momentum'], s['milestones']) == ('adamw', 0.002, 0.01, 'onecycle', 0.5, 0.1, 2.0, 32, 2, 0.8, '0.625,0.75,0.875')
