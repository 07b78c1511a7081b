"""`kd_run` from a shell: bad input refused before training, interrupted runs resumed exactly, nothing unsafe loaded.

Every test starts the real `kd_run` in a subprocess, on the sample shipped with the package, on the CPU.
Run with `pytest tests/test_cli.py` (about two minutes on two cores).
"""
import json, os, pickle, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch
from kd_nbdev.data import SAMPLE_PATH
from kd_nbdev.models import DeepNN

_script = shutil.which('kd_run', path=str(Path(sys.executable).parent)) or shutil.which('kd_run')
KD_RUN = [_script] if _script else [sys.executable, '-c', 'from kd_nbdev.experiments import main; main()']
ENV = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}  # same threads for every run

SMALL = ['--data', 'sample', '--device', 'cpu', '--train-size', '512', '--test-size', '200', '--epochs', '3']
EXPERIMENTS = ['teacher', 'student_kd', 'student_cosine']
RUN = ['--experiments', ','.join(EXPERIMENTS), *SMALL]  # about 10 s


def kd_run(*args, cwd=None):
    "Run kd_run to the end; return the finished process (stdout and stderr as text)."
    return subprocess.run([*KD_RUN, *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)

def start(*args, cwd, stderr_path):
    "Start kd_run in the background, its stderr going to a file."
    return subprocess.Popen([*KD_RUN, *map(str, args)], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=open(stderr_path, 'w'))

def results(out): return json.loads((Path(out)/'results.json').read_text())

def history(res, name, seed='42'):
    "An experiment's per-epoch history without the timings, which differ from run to run."
    return [{k: v for k, v in row.items() if k not in ('seconds', 'eval_seconds')} for row in res['runs'][name][seed]['history']]

def assert_same_runs(res, ref, names=EXPERIMENTS):
    for name in names:
        assert res['runs'][name]['42']['accuracy'] == ref['runs'][name]['42']['accuracy'], name
        assert history(res, name) == history(ref, name), name

def wait_for(proc, condition, what, timeout=240, every=0.005):
    "Poll until `condition()` holds; fail if the process ends first."
    t0 = time.monotonic()
    while not condition():
        if proc.poll() is not None: pytest.fail(f"kd_run ended (exit {proc.returncode}) before {what}")
        if time.monotonic() - t0 > timeout: proc.kill(); pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "An uninterrupted run: its folder and its results."
    out = tmp_path_factory.mktemp('reference')/'run'
    p = kd_run(*RUN, '--out', out, '--quiet')
    assert p.returncode == 0, p.stderr
    return out, results(out)


# ## Bad input: refused before training, one line, exit code 2, nothing written

@pytest.fixture(scope='module')
def bad(tmp_path_factory):
    "A folder of broken data files and teacher checkpoints."
    d = tmp_path_factory.mktemp('bad')
    raw = SAMPLE_PATH.read_bytes()
    (d/'truncated.npz').write_bytes(raw[:len(raw)//2])
    damaged = bytearray(raw); damaged[500_000:502_000] = bytes(2000)  # inside the compressed images: zlib's own error
    (d/'damaged.npz').write_bytes(damaged)
    (d/'text.npz').write_text('x_train,y_train\n1,2\n')
    (d/'notes.txt').write_text('not data')
    arrays = dict(np.load(SAMPLE_PATH))
    def variant(name, **changes): np.savez(d/name, **{**arrays, **changes})
    variant('float_images.npz', x_train=arrays['x_train'].astype(np.float32))
    variant('small_images.npz', x_test=arrays['x_test'][:, :16])
    variant('float_labels.npz', y_train=arrays['y_train'].astype(np.float32))
    variant('labels_out_of_range.npz', y_test=arrays['y_test'] + 1)
    variant('too_few_labels.npz', y_train=arrays['y_train'][:100])
    np.savez(d/'other_arrays.npz', images=arrays['x_train'])
    odd = DeepNN(); odd.features[7] = torch.nn.Conv2d(64, 30, 3, padding=1); odd.classifier[0] = torch.nn.Linear(1920, 512)
    torch.save(odd.state_dict(), d/'odd_teacher.pt')
    torch.save({'features.0.weight': torch.zeros(3)}, d/'not_deepnn.pt')
    return d

BAD = {  # case: (arguments, what the message must say)
    'missing data':         (['--data', '{bad}/missing.npz'], ['No file or folder', 'Give the path of a CIFAR-10 .npz']),
    'not an .npz':          (['--data', '{bad}/notes.txt'], ['not an .npz file', 'Give a CIFAR-10 .npz']),
    'text named .npz':      (['--data', '{bad}/text.npz'], ['not a readable .npz', 'write it again with numpy.savez']),
    'truncated .npz':       (['--data', '{bad}/truncated.npz'], ['not a readable .npz', 'Check that it is complete']),
    'damaged .npz':         (['--data', '{bad}/damaged.npz'], ['not a readable .npz', 'Check that it is complete']),
    'other arrays':         (['--data', '{bad}/other_arrays.npz'], ['lacks the arrays', 'x_train, y_train, x_test, y_test']),
    'float images':         (['--data', '{bad}/float_images.npz'], ['x_train must be uint8', 'float32', 'Store the images']),
    'images of wrong size': (['--data', '{bad}/small_images.npz'], ['x_test must be uint8 images of shape (N, 32, 32, 3)', '(400, 16, 32, 3)']),
    'float labels':         (['--data', '{bad}/float_labels.npz'], ['y_train must be a 1-d integer array', 'one class number (0-9)']),
    'labels outside 0-9':   (['--data', '{bad}/labels_out_of_range.npz'], ['y_test has labels outside 0-9', 'max 10']),
    'too few labels':       (['--data', '{bad}/too_few_labels.npz'], ['1200 images but y_train has 100 labels', 'one label per image']),
    'epochs 0':             (['--epochs', '0'], ['epochs must be a positive number']),
    'batch size 0':         (['--batch-size', '0'], ['batch_size must be a positive number']),
    'lr 0':                 (['--lr', '0'], ['lr must be a positive number']),
    'lr negative':          (['--lr', '-0.001'], ['lr must be a positive number']),
    'T 0':                  (['--T', '0'], ['T must be a positive number']),
    'T negative':           (['--T', '-2'], ['T must be a positive number']),
    'negative weight':      (['--soft-weight', '-0.5'], ['must not be negative', 'soft_weight=-0.5']),
    'weights sum to zero':  (['--mse-weight', '0', '--regressor-ce-weight', '0'], ['student_regressor', 'all zero', 'positive value']),
    'unknown experiment':   (['--experiments', 'teacher,student_mse'], ["unknown experiment 'student_mse'", 'choose from teacher']),
    'KD without teacher':   (['--experiments', 'student_kd,student_cosine'], ['need a teacher', "add 'teacher'", '--teacher']),
    'missing teacher file': (['--experiments', 'student_kd', '--teacher', '{bad}/nothing.pt'], ['no teacher checkpoint', "add 'teacher'"]),
    'teacher of other shape': (['--experiments', 'student_cosine', '--teacher', '{bad}/odd_teacher.pt'],
                               ['another shape than DeepNN', 'features.7.weight is (30, 64, 3, 3)', 'adapter']),
    'teacher not a DeepNN': (['--experiments', 'student_kd', '--teacher', '{bad}/not_deepnn.pt'], ['does not hold the weights of a DeepNN']),
    'data as teacher':      (['--experiments', 'student_kd', '--teacher', str(SAMPLE_PATH)], ['cannot be read as PyTorch weights']),
    'seeds not numbers':    (['--seeds', '42,x'], ['--seeds takes whole numbers']),
    'train size 0':         (['--train-size', '0'], ['train_size must be a positive number']),
    'threads 0':            (['--threads', '0'], ['threads must be a positive number']),
    'eval every 0':         (['--eval-every', '0'], ['eval_every must be a positive number']),
}

@pytest.mark.parametrize('case', BAD, ids=[c.replace(' ', '_') for c in BAD])
def test_bad_input_is_refused_before_training(case, bad, tmp_path):
    args, says = BAD[case]
    args = [a.replace('{bad}', str(bad)) for a in args]
    p = kd_run('--data', 'sample', '--device', 'cpu', '--epochs', '1', '--train-size', '256', *args, '--out', 'out', cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('kd_run: error: '), p.stderr  # no traceback, no training progress
    for s in says: assert s in lines[0], (s, lines[0])
    assert p.stdout == ''
    assert list(tmp_path.iterdir()) == []  # nothing written: not even the output folder


def test_threads_sets_pytorch_threads(tmp_path):
    p = kd_run('--data', 'sample', '--device', 'cpu', '--experiments', 'student_ce', '--epochs', '1', '--train-size', '128',
               '--test-size', '100', '--threads', '2', '--out', tmp_path/'run', '--quiet')
    assert p.returncode == 0, p.stderr
    assert results(tmp_path/'run')['device'].endswith(', 2 threads)')  # not the OMP_NUM_THREADS=1 the tests start with


def test_eval_every_tests_less_and_trains_the_same(reference, tmp_path):
    _, ref = reference
    p = kd_run(*RUN, '--eval-every', '2', '--out', tmp_path/'run', '--quiet')
    assert p.returncode == 0, p.stderr
    res = results(tmp_path/'run')
    for name in EXPERIMENTS:
        rows, ref_rows = res['runs'][name]['42']['history'], ref['runs'][name]['42']['history']
        assert [r['test_accuracy'] for r in rows] == [None, ref_rows[1]['test_accuracy'], ref_rows[2]['test_accuracy']]
        assert [r['loss'] for r in rows] == [r['loss'] for r in ref_rows]  # the same training
    assert res['eval_every'] == 2


# ## Same seed, same numbers

def test_same_seed_gives_the_same_results(reference, tmp_path):
    ref_out, ref = reference
    p = kd_run(*RUN, '--out', tmp_path/'again', '--quiet')
    assert p.returncode == 0, p.stderr
    assert_same_runs(results(tmp_path/'again'), ref)
    mine, theirs = (torch.load(o/'teacher.pt', weights_only=True) for o in (tmp_path/'again', ref_out))
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


# ## Interrupted runs, resumed

def test_ctrl_c_then_resume_gives_the_uninterrupted_result(reference, tmp_path):
    "SIGINT during the teacher's second epoch; `--resume` continues from its first-epoch checkpoint."
    out, ckpt = tmp_path/'run', tmp_path/'run'/'checkpoints'/'teacher_seed42.pt'
    proc = start(*RUN, '--out', out, '--quiet', cwd=tmp_path, stderr_path=tmp_path/'stderr')
    wait_for(proc, ckpt.exists, 'the first checkpoint')
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    said = (tmp_path/'stderr').read_text()
    assert 'interrupted' in said and '--resume' in said, said
    assert torch.load(ckpt, weights_only=True)['epoch'] < 3  # stopped mid-way
    assert not (out/'results.json').exists()  # no experiment had finished

    p = kd_run(*RUN, '--out', out, '--resume')  # with progress messages, to see where it resumed from
    assert p.returncode == 0, p.stderr
    assert 'teacher: resuming after epoch' in p.stderr
    assert_same_runs(results(out), reference[1])


def test_sigkill_then_resume_gives_the_uninterrupted_result(reference, tmp_path):
    "SIGKILL while a student trains; results.json is valid JSON at every moment; `--resume` finishes the run exactly."
    out, ckpt = tmp_path/'run', tmp_path/'run'/'checkpoints'/'student_kd_seed42.pt'
    proc = start(*RUN, '--out', out, '--quiet', cwd=tmp_path, stderr_path=tmp_path/'stderr')
    seen = set()
    def poll():
        if (out/'results.json').exists(): seen.add(tuple(results(out)['runs']))  # raises if ever half-written
        return ckpt.exists()
    wait_for(proc, poll, "student_kd's first checkpoint")
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    res = results(out)  # still complete JSON
    assert seen == {('teacher',)} and list(res['runs']) == ['teacher']  # killed after the teacher, during the students
    assert history(res, 'teacher') == history(reference[1], 'teacher')

    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 0, p.stderr
    assert 'student_kd: resuming after epoch' in p.stderr  # the teacher read from teacher.pt, student_kd from its checkpoint
    assert_same_runs(results(out), reference[1])


def test_a_run_stopped_before_teacher_pt_was_written_resumes_with_the_trained_teacher(reference, tmp_path):
    "Stopped after the teacher was recorded in results.json but before teacher.pt was written: the teacher comes back from its checkpoint."
    out = tmp_path/'run'; shutil.copytree(reference[0], out)
    res = results(out); res['runs'] = {'teacher': res['runs']['teacher']}
    (out/'results.json').write_text(json.dumps(res))
    (out/'teacher.pt').unlink()
    for name in EXPERIMENTS[1:]: (out/'checkpoints'/f'{name}_seed42.pt').unlink()
    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 0, p.stderr
    assert 'teacher: resuming after epoch 3' in p.stderr
    assert_same_runs(results(out), reference[1])  # the students learnt from the trained teacher, not from a new one


def test_a_finished_run_is_not_overwritten_and_is_resumed_only_with_its_own_data(reference, tmp_path):
    out = tmp_path/'run'; shutil.copytree(reference[0], out)
    before = (out/'results.json').read_bytes()
    p = kd_run(*RUN, '--out', out)
    assert p.returncode == 2 and 'already holds results' in p.stderr and '--resume' in p.stderr, p.stderr
    p = kd_run(*RUN, '--train-size', '256', '--out', out, '--resume')
    assert p.returncode == 2 and 'holds a run with other train_size' in p.stderr, p.stderr
    p = kd_run(*RUN, '--lr', '0.002', '--out', out, '--resume')
    assert p.returncode == 2 and 'holds a run with other settings' in p.stderr, p.stderr
    assert (out/'results.json').read_bytes() == before


# ## A loss that is not finite

def test_a_loss_that_is_not_finite_stops_the_run_and_keeps_finished_results(tmp_path):
    out = tmp_path/'run'  # a soft-target weight of 1e39 overflows float32: the first KD loss is infinite
    p = kd_run('--experiments', 'teacher,student_kd', *SMALL[:-2], '--epochs', '1', '--soft-weight', '1e39', '--out', out, '--quiet')
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('kd_run: error: student_kd: the loss became inf at epoch 1, batch 1'), p.stderr
    assert 'finished experiments are kept in' in lines[0]
    assert list(results(out)['runs']) == ['teacher'] and (out/'teacher.pt').exists()


# ## Nothing unsafe is loaded

class Payload:
    "Unpickling this creates the file `marker`: what a malicious checkpoint could do."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (open, (self.marker, 'w'))

def write_malicious(path, marker, kind):
    if kind == 'torch.save': torch.save({'features.0.weight': Payload(marker)}, path)
    else: path.write_bytes(pickle.dumps({'features.0.weight': Payload(marker)}))

def load_unsafely(path, kind):
    return torch.load(path, weights_only=False) if kind == 'torch.save' else pickle.loads(path.read_bytes())

@pytest.mark.parametrize('kind', ['torch.save', 'pickle'])
def test_a_malicious_teacher_file_is_refused_and_never_run(kind, tmp_path):
    armed = tmp_path/'armed.pt'; write_malicious(armed, tmp_path/'armed_marker', kind)
    load_unsafely(armed, kind)
    assert (tmp_path/'armed_marker').exists()  # the payload works when loaded the unsafe way

    evil, marker = tmp_path/'evil.pt', tmp_path/'MARKER'; write_malicious(evil, marker, kind)
    p = kd_run('--experiments', 'student_kd', *SMALL, '--teacher', evil, '--out', tmp_path/'run')
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith('kd_run: error: ') and 'cannot be read as PyTorch weights' in p.stderr, p.stderr
    assert not marker.exists() and not (tmp_path/'run').exists()


def test_a_malicious_checkpoint_is_ignored_on_resume(reference, tmp_path):
    "A checkpoint replaced by a malicious file: the run starts that experiment afresh and ends as if never interrupted."
    out, marker = tmp_path/'run', tmp_path/'MARKER'
    (out/'checkpoints').mkdir(parents=True)
    write_malicious(out/'checkpoints'/'teacher_seed42.pt', marker, 'torch.save')
    p = kd_run('--experiments', 'teacher', *SMALL, '--out', out, '--resume')
    assert p.returncode == 0, p.stderr
    assert 'ignoring unreadable checkpoint' in p.stderr
    assert not marker.exists()
    assert_same_runs(results(out), reference[1], ['teacher'])


def test_a_malicious_teacher_pt_in_a_resumed_run_is_refused(reference, tmp_path):
    out, marker = tmp_path/'run', tmp_path/'MARKER'
    shutil.copytree(reference[0], out)
    write_malicious(out/'teacher.pt', marker, 'torch.save')
    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 2 and 'teacher.pt cannot be read as PyTorch weights' in p.stderr, p.stderr
    assert not marker.exists()


# ## Stale checkpoints are not used

def test_a_checkpoint_made_with_another_teacher_is_not_used(reference, tmp_path):
    ref_out, ref = reference
    torch.manual_seed(0); other = tmp_path/'other_teacher.pt'; torch.save(DeepNN().state_dict(), other)
    kd = ['--experiments', 'student_kd', *SMALL]
    out = tmp_path/'run'
    p = kd_run(*kd, '--teacher', ref_out/'teacher.pt', '--out', out, '--quiet')
    assert p.returncode == 0, p.stderr
    assert history(results(out), 'student_kd') == history(ref, 'student_kd')  # the saved teacher is the run's teacher

    p = kd_run(*kd, '--teacher', other, '--out', out, '--resume')
    assert p.returncode == 2 and 'holds a run with other teacher_weights' in p.stderr, p.stderr

    (out/'results.json').unlink()  # as if stopped right after the last checkpoint: only student_kd's checkpoint is left
    p = kd_run(*kd, '--teacher', other, '--out', out, '--resume')
    assert p.returncode == 0, p.stderr
    assert 'ignoring checkpoint' in p.stderr and 'teacher' in p.stderr
    fresh = tmp_path/'fresh'
    assert kd_run(*kd, '--teacher', other, '--out', fresh, '--quiet').returncode == 0
    assert history(results(out), 'student_kd') == history(results(fresh), 'student_kd')
    assert history(results(out), 'student_kd') != history(ref, 'student_kd')
