"""`kd_run` from a shell: bad input refused before training, interrupted runs resumed exactly, nothing unsafe loaded.

Every test starts the real `kd_run` in a subprocess, on the sample shipped with the package, on the CPU (the
full-disk tests call it in this process, to make one write fail). Run with `pytest tests/test_cli.py` (a few minutes
on two cores).

No test depends on how fast the machine is: a run that is to be stopped or raced stops itself at a named point
(`KD_NBDEV_TEST_PAUSE`, see `kd_nbdev.store.pause_point`) and waits there until the test acts. The interruption
tests carry the mark `interruption`; CI runs them again several times under CPU load.
"""
import errno, io, json, os, pickle, shutil, signal, subprocess, sys, time, zipfile
from pathlib import Path
import numpy as np
import pytest
import torch
from kd_nbdev import store
from kd_nbdev.data import SAMPLE_PATH
from kd_nbdev.benchmark import ours_command
from kd_nbdev.experiments import kd_run as kd_run_here, training_settings
from kd_nbdev.models import DeepNN
from kd_nbdev.rundir import LOCK
from kd_nbdev.sweep import kd_sweep

_script = shutil.which('kd_run', path=str(Path(sys.executable).parent)) or shutil.which('kd_run')
KD_RUN = [_script] if _script else [sys.executable, '-c', 'from kd_nbdev.experiments import main; main()']
ENV = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}  # same threads for every run

SMALL = ['--data', 'sample', '--device', 'cpu', '--train-size', '512', '--test-size', '200', '--epochs', '3']
EXPERIMENTS = ['teacher', 'student_kd', 'student_cosine']
RUN = ['--experiments', ','.join(EXPERIMENTS), *SMALL]  # about 10 s


def kd_run(*args, cwd=None, env=ENV):
    "Run kd_run to the end; return the finished process (stdout and stderr as text)."
    return subprocess.run([*KD_RUN, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

def default_signals():
    """In the child, before kd_run starts: SIGINT and SIGTERM as a terminal's foreground job has them. A test started in
    the background by a non-interactive shell (`nohup pytest ... &`, many CI runners) inherits SIGINT *ignored*, and so
    would kd_run: the test's Ctrl-C would do nothing and the run would wait at its pause point for ever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGTERM, signal.SIG_DFL)

CHILDREN = []  # every kd_run started in the background: killed when its test ends, however it ends (`no_child_left`)

def start(*args, cwd, stderr_path, pause=None, preexec_fn=default_signals):
    "Start kd_run in the background, its stderr going to a file; `pause=(point, marker)`: it waits at that point (see `paused`)."
    env = {**ENV, store.PAUSE_VARIABLE: f'{pause[0]}={pause[1]}'} if pause else ENV
    with open(stderr_path, 'w') as err:
        proc = subprocess.Popen([*KD_RUN, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=preexec_fn)
    CHILDREN.append(proc)
    return proc

@pytest.fixture(autouse=True)
def no_child_left():
    "No test leaves a kd_run behind: whatever the test did, every child it started still running is killed (a `finally`)."
    yield
    while CHILDREN:
        proc = CHILDREN.pop()
        if proc.poll() is None: proc.kill()
        proc.wait()

def paused(proc, marker, also=lambda: None):
    "Wait until the run started with `pause=(point, marker)` waits at its point: however slow the machine, it is there then."
    wait_for(proc, lambda: also() or marker.exists(), f'the pause marker {marker.name}')
    assert proc.poll() is None  # and it stays there until the test removes the marker or signals it

def one_line(p_or_text) -> str:
    "The single line of stderr (fails if there are more)."
    lines = (p_or_text if isinstance(p_or_text, str) else p_or_text.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]

def tree(folder) -> dict:
    "Every file under `folder` with its bytes: to show that nothing was written."
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(Path(folder).rglob('*'))}

def results(out): return json.loads((Path(out)/'results.json').read_text())

def history(res, name, seed='42'):
    "An experiment's per-epoch history without the timings, which differ from run to run."
    return [{k: v for k, v in row.items() if k not in ('seconds', 'eval_seconds')} for row in res['runs'][name][seed]['history']]

def assert_same_runs(res, ref, names=EXPERIMENTS):
    for name in names:
        assert res['runs'][name]['42']['accuracy'] == ref['runs'][name]['42']['accuracy'], name
        assert history(res, name) == history(ref, name), name

def wait_for(proc, condition, what, timeout=900, every=0.01):
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
    assert f"(teacher weights: {out/'teacher.pt'})" in p.stdout  # it trained the teacher: it names its file
    assert not (out/LOCK).exists()
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
    with zipfile.ZipFile(d/'huge.npz', 'w') as z:  # x_train's header declares 10**12 images; the file holds none
        header = io.BytesIO(); np.lib.format.write_array_header_1_0(header, {'descr': '|u1', 'fortran_order': False, 'shape': (10**12, 32, 32, 3)})
        z.writestr('x_train.npy', header.getvalue())
        for k in ('y_train', 'x_test', 'y_test'): b = io.BytesIO(); np.save(b, arrays[k]); z.writestr(k + '.npy', b.getvalue())
    labels = np.arange(20) % 10
    for name, shape in (('tiny_2x2', (2, 2)), ('strip_1x1000', (1, 1000))):
        x = np.zeros((20, *shape, 3), np.uint8)
        np.savez(d/f'{name}.npz', x_train=x, y_train=labels, x_test=x, y_test=labels)
    (d/'tv'/'cifar-10-batches-py').mkdir(parents=True)  # torchvision's folder, emptied (an interrupted download)
    (d/'own_models.py').write_text(OWN_MODELS_PY)
    return d

OWN_MODELS_PY = """
from torch import nn
from kd_nbdev.models import LightNN
class _Out(nn.Module):
    def __init__(self, num_classes, wrap): super().__init__(); self.net, self.wrap = LightNN(num_classes), wrap
    def forward(self, x): return self.wrap(self.net(x))
def tuple_out(num_classes=10): return _Out(num_classes, lambda y: (y, y))  # logits and features, as some models return
def dict_out(num_classes=10): return _Out(num_classes, lambda y: {'logits': y})
class _Pair(nn.Module):
    def forward(self, x): return x, x
class _TupleLayer(nn.Module):
    def __init__(self, num_classes): super().__init__(); self.pair, self.fc = _Pair(), nn.Linear(3072, num_classes)
    def forward(self, x): return self.fc(self.pair(x.flatten(1))[0])
def tuple_layer(num_classes=10): return _TupleLayer(num_classes)
def bn_student(num_classes=10):  # BatchNorm1d cannot train on a batch of one image
    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, num_classes))
"""

def OWN_MODELS(folder) -> dict:
    "The environment in which kd_run imports the models of `own_models.py` in `folder`."
    return {**ENV, 'PYTHONPATH': os.pathsep.join(p for p in (str(folder), ENV.get('PYTHONPATH')) if p)}

BAD = {  # case: (arguments, what the message must say)
    'missing data':         (['--data', '{bad}/missing.npz'], ['No file or folder', 'Give the path of an .npz file or of a folder of images']),
    'not an .npz':          (['--data', '{bad}/notes.txt'], ['not an .npz file', 'Give an .npz, a folder of class folders']),
    'text named .npz':      (['--data', '{bad}/text.npz'], ['not a readable .npz', 'write it again with numpy.savez']),
    'truncated .npz':       (['--data', '{bad}/truncated.npz'], ['not a readable .npz', 'Check that it is complete']),
    'damaged .npz':         (['--data', '{bad}/damaged.npz'], ['not a readable .npz', 'Check that it is complete']),
    'other arrays':         (['--data', '{bad}/other_arrays.npz'], ['lacks the arrays', 'x_train, y_train, x_test, y_test']),
    'float images':         (['--data', '{bad}/float_images.npz'], ['x_train must be uint8', 'float32', 'Store the images']),
    'images of wrong size': (['--data', '{bad}/small_images.npz'], ['the training images are (3, 32, 32) (C,H,W) but the test images (3, 16, 32)', 'the same size']),
    'float labels':         (['--data', '{bad}/float_labels.npz'], ['y_train must be a 1-d integer array', 'one class number per image']),
    'labels outside 0-9':   (['--data', '{bad}/labels_out_of_range.npz'], ['the labels go up to 10 but only 10 class names are given']),
    'too few labels':       (['--data', '{bad}/too_few_labels.npz'], ['1200 images but y_train has 100 labels', 'one label per image']),
    'epochs 0':             (['--epochs', '0'], ['epochs must be a positive number']),
    'folder of no images':  (['--data', '{bad}'], ['neither CIFAR-10', 'nor class folders']),
    'image size 0':         (['--image-size', '0'], ['image_size must be a positive number']),
    'unknown norm':         (['--norm', 'fancy'], ['--norm takes auto, data, imagenet or MEAN/STD']),
    'norm of one channel':  (['--norm', '0.5/0.2'], ['--norm gives 1 mean value for images with 3 channels']),
    'unknown model':        (['--teacher-model', 'resnet'], ['--teacher-model: a model is a registered name', 'resnet18']),
    'model not importable': (['--student-model', 'nowhere_xyz:Net'], ["--student-model: cannot import 'nowhere_xyz'"]),
    'model of wrong output': (['--experiments', 'teacher', '--teacher-model', 'torch.nn:Identity'], ['the teacher gives outputs of shape (3, 32, 32) per image']),
    'no such layer':        (['--experiments', 'teacher,student_at', '--teacher-layer', 'layer9'], ["the teacher has no layer 'layer9'", 'features, classifier']),
    'layer that is no map': (['--experiments', 'teacher,student_at', '--teacher-layer', 'classifier'], ['student_at: attention transfer compares feature maps']),
    'teacher epochs 0':     (['--teacher-epochs', '0'], ['teacher_epochs must be a positive number']),
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
                               ['another shape than DeepNN', 'features.7.weight is (30, 64, 3, 3)']),
    'teacher not a DeepNN': (['--experiments', 'student_kd', '--teacher', '{bad}/not_deepnn.pt'], ['does not hold the weights of a DeepNN']),
    'data as teacher':      (['--experiments', 'student_kd', '--teacher', str(SAMPLE_PATH)], ['cannot be read as PyTorch weights']),
    'seeds not numbers':    (['--seeds', '42,x'], ['--seeds takes whole numbers']),
    'train size 0':         (['--train-size', '0'], ['train_size must be a positive number']),
    'threads 0':            (['--threads', '0'], ['threads must be a positive number']),
    'eval every 0':         (['--eval-every', '0'], ['eval_every must be a positive number']),
    # every option checked, by name, before anything is written: none trains a seed and then refuses the next
    'seeds beyond 64 bits': (['--seeds', f'42,{2**64}'], [f'--seeds {2**64} is refused', 'a seed is a whole number from 0 to 2**63 - 1']),
    'seed beyond 64 bits':  (['--seed', str(2**64)], [f'--seed {2**64} is refused']),
    'negative seed':        (['--seed', '-1'], ['--seed -1 is refused']),
    'the same seed twice':  (['--seeds', '42,43,42'], ['--seeds gives the seed 42 twice']),
    **{f'{o} beyond 64 bits': ([f"--{o.replace('_', '-')}", str(2**64)], [f'{o}={2**64} is refused', 'below 2**63'])
       for o in ('train_size', 'test_size', 'epochs', 'batch_size', 'threads', 'eval_every')},
    'NaN weight':           (['--soft-weight', 'nan'], ['kd.soft_weight=nan is refused']),
    'infinite weight':      (['--set', 'kd.ce_weight=inf'], ['kd.ce_weight=inf is refused']),
    'NaN hidden weight':    (['--mse-weight', 'nan'], ['regressor.hidden_weight=nan is refused']),
    'infinite lr':          (['--lr', 'inf'], ['lr must be a positive number']),
    'epochs not a number':  (['--epochs', 'ten'], ["argument --epochs: invalid int value: 'ten'", '(see kd_run --help)']),
    'unknown option':       (['--bogus'], ['unrecognized arguments: --bogus']),
    **{f'device {d}': (['--device', d], [f"device {d!r} is not supported", "use 'cpu' or 'cuda'"]) for d in ('meta', 'xpu', 'mps')},
    'device with a bad index': (['--device', 'cuda:x'], ["unknown device 'cuda:x'"]),
    # sizes checked before anything is allocated; the data cut to --train-size before it is resized
    'npz declaring 10**12 images': (['--data', '{bad}/huge.npz'], ['x_train declares (1000000000000, 32, 32, 3) uint8', 'the file is damaged']),
    'image size 100000':    (['--image-size', '100000'], ['resizing 656 images to 100000x100000 needs', 'more than this machine has']),
    # images the networks cannot take, models whose outputs are not one tensor
    'image size 3':         (['--image-size', '3'], ['the teacher cannot be built for 3x3x3 images', '--image-size']),
    'images of 2x2':        (['--data', '{bad}/tiny_2x2.npz'], ['the teacher cannot be built for 3x2x2 images']),
    'images of 1x1000':     (['--data', '{bad}/strip_1x1000.npz'], ['the teacher cannot be built for 3x1x1000 images']),
    'model returning a tuple': (['--experiments', 'teacher', '--teacher-model', 'own_models:tuple_out'], ['the teacher returns a tuple, not a tensor of class scores']),
    'model returning a dict': (['--experiments', 'student_ce', '--student-model', 'own_models:dict_out'], ['the student returns a dict']),
    'layer returning a tuple': (['--experiments', 'teacher,student_rkd', '--student-model', 'own_models:tuple_layer', '--student-layer', 'pair'],
                                ["the student's layer 'pair' returns a tuple, not one tensor"]),
    'student without parameters': (['--experiments', 'student_ce', '--student-model', 'torch.nn:Identity'], ['student_ce: the student has no trainable parameters']),
    'damaged torchvision folder': (['--data', '{bad}/tv'], ['cifar-10-batches-py is damaged or incomplete', 'remove that folder']),
    # an empty value is a malformed one
    **{f'empty {o}': ([o, ''], [f"argument {o}: an empty value '' is refused"]) for o in ('--out', '--data', '--experiments', '--teacher', '--norm')},
}

@pytest.mark.parametrize('case', BAD, ids=[c.replace(' ', '_') for c in BAD])
def test_bad_input_is_refused_before_training(case, bad, tmp_path):
    args, says = BAD[case]
    args = [a.replace('{bad}', str(bad)) for a in args]
    p = kd_run('--data', 'sample', '--device', 'cpu', '--epochs', '1', '--train-size', '256', '--out', 'out', *args, cwd=tmp_path, env=OWN_MODELS(bad))
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

def no_leftovers(out):
    "A stopped run leaves no temporary file and no lock."
    assert not list(Path(out).rglob('*.tmp')) and not (Path(out)/LOCK).exists(), sorted(Path(out).rglob('*'))

@pytest.mark.interruption
def test_ctrl_c_then_resume_gives_the_uninterrupted_result(reference, tmp_path):
    "SIGINT while the teacher's first checkpoint is the last thing on disk; `--resume` continues from it."
    out, ckpt, marker = tmp_path/'run', tmp_path/'run'/'checkpoints'/'teacher_seed42.pt', tmp_path/'paused'
    proc = start(*RUN, '--out', out, '--quiet', cwd=tmp_path, stderr_path=tmp_path/'stderr',
                 pause=('checkpoint teacher_seed42 1', marker))
    paused(proc, marker)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    said = one_line((tmp_path/'stderr').read_text())
    assert said.startswith('kd_run: interrupted; no experiment had finished') and '--resume' in said, said
    assert 'results.json' not in said  # no experiment had finished: no results file to name
    assert torch.load(ckpt, weights_only=True)['epoch'] == 1  # stopped exactly there
    assert not (out/'results.json').exists()
    no_leftovers(out)

    p = kd_run(*RUN, '--out', out, '--resume')  # with progress messages, to see where it resumed from
    assert p.returncode == 0, p.stderr
    assert 'teacher: resuming after epoch 1' in p.stderr
    assert_same_runs(results(out), reference[1])


@pytest.mark.interruption
def test_sigterm_is_ctrl_c(reference, tmp_path):
    "SIGTERM (what `kill`, a scheduler or a container stop sends): the same message and ending as Ctrl-C, exit 143."
    out, marker = tmp_path/'run', tmp_path/'paused'
    proc = start(*RUN, '--out', out, '--quiet', cwd=tmp_path, stderr_path=tmp_path/'stderr',
                 pause=('checkpoint student_kd_seed42 2', marker))
    paused(proc, marker)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    said = one_line((tmp_path/'stderr').read_text())
    assert said == (f"kd_run: terminated (SIGTERM); finished experiments are kept in {out/'results.json'}. "
                    "Run the same command with --resume to continue."), said
    assert list(results(out)['runs']) == ['teacher']
    no_leftovers(out)
    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 0, p.stderr
    assert 'student_kd: resuming after epoch 2' in p.stderr
    assert_same_runs(results(out), reference[1])


@pytest.mark.interruption
def test_sigkill_then_resume_gives_the_uninterrupted_result(reference, tmp_path):
    "SIGKILL while a student trains; results.json is valid JSON at every moment; `--resume` takes over the dead run's lock and finishes exactly."
    out, marker = tmp_path/'run', tmp_path/'paused'
    proc = start(*RUN, '--out', out, '--quiet', cwd=tmp_path, stderr_path=tmp_path/'stderr',
                 pause=('checkpoint student_kd_seed42 1', marker))
    seen = set()
    def poll():
        if (out/'results.json').exists(): seen.add(tuple(results(out)['runs']))  # raises if ever half-written
    paused(proc, marker, also=poll)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    res = results(out)  # still complete JSON
    assert seen == {('teacher',)} and list(res['runs']) == ['teacher']  # killed after the teacher, during the students
    assert history(res, 'teacher') == history(reference[1], 'teacher')
    assert json.loads((out/LOCK).read_text())['pid'] == proc.pid  # a killed run cannot remove its lock

    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 0, p.stderr
    assert f'the run that held it (process {proc.pid}) is no longer running' in p.stderr  # the stale lock, taken over
    assert 'student_kd: resuming after epoch 1' in p.stderr  # the teacher read from teacher.pt, student_kd from its checkpoint
    assert_same_runs(results(out), reference[1])
    no_leftovers(out)


@pytest.mark.interruption
def test_a_run_started_with_ctrl_c_ignored_keeps_it_ignored_and_stops_on_sigterm(reference, tmp_path):
    "A background job of a non-interactive shell inherits SIGINT ignored: kd_run keeps the shell's convention, and SIGTERM still stops it cleanly."
    out, marker = tmp_path/'run', tmp_path/'paused'
    ignore_ctrl_c = lambda: (default_signals(), signal.signal(signal.SIGINT, signal.SIG_IGN))
    proc = start(*RUN, '--out', out, '--quiet', cwd=tmp_path, stderr_path=tmp_path/'stderr',
                 pause=('checkpoint teacher_seed42 1', marker), preexec_fn=ignore_ctrl_c)
    paused(proc, marker)
    proc.send_signal(signal.SIGINT)
    with pytest.raises(subprocess.TimeoutExpired): proc.wait(timeout=2)  # ignored, as the shell meant: still waiting at its point
    assert marker.exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    said = one_line((tmp_path/'stderr').read_text())
    assert said.startswith('kd_run: terminated (SIGTERM); no experiment had finished') and '--resume' in said, said
    no_leftovers(out)


# ## One run per folder

@pytest.mark.interruption
def test_a_second_run_on_a_busy_folder_is_refused(reference, tmp_path):
    "While one run owns its folder, another (other experiments, other settings, --resume) is refused naming it; the first ends as if alone."
    out, marker = tmp_path/'run', tmp_path/'paused'
    proc = start(*RUN, '--out', out, '--quiet', cwd=tmp_path, stderr_path=tmp_path/'stderr', pause=('locked', marker))
    paused(proc, marker)
    before = tree(out)
    assert list(before) == [LOCK]
    for extra in (['--experiments', 'teacher'], ['--lr', '0.002'], ['--resume']):
        p = kd_run(*RUN, *extra, '--out', out)
        assert p.returncode == 2, p.stderr
        assert one_line(p) == (f"kd_run: error: {out} is in use by another run, process {proc.pid} (lock file {out/LOCK}); "
                               "wait for it to end or choose another --out"), p.stderr
        assert p.stdout == '' and tree(out) == before  # nothing written, the first run's lock untouched
    marker.unlink()  # let the first run go on
    assert proc.wait(timeout=600) == 0, (tmp_path/'stderr').read_text()
    assert_same_runs(results(out), reference[1])
    no_leftovers(out)


# ## A resumed run is the same run

def test_resume_with_other_seeds_or_experiments_is_refused(reference, tmp_path):
    out = tmp_path/'run'; shutil.copytree(reference[0], out)
    before = tree(out)
    for extra, says in ((['--seed', '44'], 'holds a run with the seeds 42, not 44; --resume continues that run only: give it its seeds (--seeds 42)'),
                        (['--seeds', '42,43'], 'holds a run with the seeds 42, not 42,43'),
                        (['--experiments', 'teacher,student_kd'], 'holds a run of teacher,student_kd,student_cosine, not teacher,student_kd'),
                        (['--experiments', 'teacher,student_kd,student_cosine,student_ce'], '(--experiments teacher,student_kd,student_cosine)')):
        p = kd_run(*RUN, *extra, '--out', out, '--resume')
        assert p.returncode == 2 and says in one_line(p), p.stderr
        assert tree(out) == before
    res = results(out)
    assert res['seeds'] == [42] and res['experiment_names'] == EXPERIMENTS and list(res['runs']) == EXPERIMENTS
    assert all(list(runs) == ['42'] for runs in res['runs'].values())  # the file agrees with itself


# ## Writing that cannot be done

def without_dac_override():
    "A prefix that runs a command as root without the power to write in read-only folders, or `None` where none is needed or possible."
    if os.geteuid() != 0: return []
    return ['setpriv', '--bounding-set=-dac_override,-dac_read_search,-fowner'] if shutil.which('setpriv') else None

def test_an_out_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    (tmp_path/'a_file').write_text('')
    p = kd_run(*RUN, '--out', tmp_path/'a_file'/'run')
    assert p.returncode == 2 and p.stdout == ''
    assert one_line(p) == (f"kd_run: error: cannot write the results: {tmp_path/'a_file'/'run'} is under {tmp_path/'a_file'}, "
                           "which is a file, not a folder; choose another --out")
    (tmp_path/'folders'/'checkpoints'/'student_kd_seed42.pt').mkdir(parents=True)
    p = kd_run(*RUN, '--out', tmp_path/'folders')
    assert p.returncode == 2 and 'student_kd_seed42.pt is a folder where kd_run writes a file' in one_line(p)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*')) == [
        'a_file', 'folders', 'folders/checkpoints', 'folders/checkpoints/student_kd_seed42.pt']

    prefix = without_dac_override()
    if prefix is None: pytest.skip('root without setpriv: a read-only folder cannot be made here')
    ro = tmp_path/'read_only'; ro.mkdir(); ro.chmod(0o555)
    try: p = subprocess.run([*prefix, *KD_RUN, *map(str, RUN), '--out', str(ro/'run')], env=ENV, capture_output=True, text=True, timeout=300)
    finally: ro.chmod(0o755)
    assert p.returncode == 2 and p.stdout == ''
    assert one_line(p) == f"kd_run: error: cannot write the results: {ro} cannot be written (Permission denied); choose another --out"
    assert list(ro.iterdir()) == []


@pytest.fixture
def one_thread():
    "kd_run in this process, with the one thread of the subprocess runs (so its numbers are theirs); restored afterwards."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.mark.parametrize('nth', [4, 7], ids=['results_json', 'a_checkpoint'])
def test_a_full_disk_stops_with_one_line_and_resume_finishes_exactly(reference, tmp_path, monkeypatch, capsys, one_thread, nth):
    "The `nth` atomic write of the run fails half-way with ENOSPC (4th: results.json after the teacher; 7th: student_kd's second checkpoint)."
    out, real, writes = tmp_path/'run', store.write_atomic, []
    def full_disk(path, write):
        writes.append(Path(path).relative_to(out).as_posix())
        if len(writes) != nth: return real(path, write)
        def half(f): f.write(b'x' * 1000); raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, half)
    monkeypatch.setattr(store, 'write_atomic', full_disk)  # save_atomic and write_json write through it
    with pytest.raises(SystemExit) as e: kd_run_here([*RUN, '--out', str(out), '--quiet'])
    assert e.value.code == 1
    failed = writes[-1]
    assert failed == {4: 'results.json', 7: 'checkpoints/student_kd_seed42.pt'}[nth]
    said = one_line(capsys.readouterr().err)
    assert said.startswith(f"kd_run: error: cannot write {out/failed}: No space left on device. The run stopped; ") and '--resume' in said, said
    no_leftovers(out)  # the temporary file of the failed write is gone
    if nth == 4:  # nothing finished on record, the teacher's last checkpoint kept
        assert 'no experiment had finished' in said and not (out/'results.json').exists()
        assert torch.load(out/'checkpoints'/'teacher_seed42.pt', weights_only=True)['epoch'] == 3
    else:  # the teacher finished and kept; student_kd's first-epoch checkpoint untouched
        assert f"finished experiments are kept in {out/'results.json'}" in said and list(results(out)['runs']) == ['teacher']
        assert torch.load(out/'checkpoints'/'student_kd_seed42.pt', weights_only=True)['epoch'] == 1
    monkeypatch.undo()  # space freed

    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 0, p.stderr
    assert ('teacher: resuming after epoch 3' if nth == 4 else 'student_kd: resuming after epoch 1') in p.stderr
    assert_same_runs(results(out), reference[1])
    no_leftovers(out)


class FullDisk:
    "An `open` whose files for writing take `room` bytes in all, then raise `OSError` ENOSPC (only for paths containing `only`)."
    def __init__(self, room=1000, only=''): self.room, self.only = room, only
    def __call__(self, path, mode='r', *a, **kw):
        f = open(path, mode, *a, **kw)
        return _Filling(f, self) if 'w' in mode and self.only in str(path) else f

class _Filling:
    def __init__(self, f, disk): self.f, self.disk = f, disk
    def write(self, b):
        b = memoryview(b).cast('B')
        if len(b) > self.disk.room: self.f.write(b[:self.disk.room]); self.disk.room = 0; raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.disk.room -= len(b); return self.f.write(b)
    def __getattr__(self, name): return getattr(self.f, name)
    def __enter__(self): return self
    def __exit__(self, *exc): self.f.close()

def test_a_full_disk_inside_torch_save_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys, one_thread):
    "The disk fills while the teacher's first checkpoint is written by torch.save: one line naming the file, --resume, exit 1."
    out = tmp_path/'run'
    monkeypatch.setattr(store, 'open', FullDisk(1000, only='.pt'), raising=False)  # the store module's writes meet the full disk
    with pytest.raises(SystemExit) as e: kd_run_here([*RUN, '--out', str(out), '--quiet'])
    assert e.value.code == 1
    said = one_line(capsys.readouterr().err)
    assert said.startswith(f"kd_run: error: cannot write {out/'checkpoints'/'teacher_seed42.pt'}: No space left on device. "
                           "The run stopped; no experiment had finished") and '--resume' in said, said
    no_leftovers(out)

def test_kd_report_and_kd_bench_on_a_full_disk_keep_their_earlier_files(reference, tmp_path, monkeypatch, capsys):
    "A full disk while kd_report writes its plots, or kd_bench its JSON: one line, exit 1, the earlier files whole."
    from kd_nbdev import benchmark
    from kd_nbdev.results import kd_report
    from kd_nbdev.benchmark import kd_bench
    kd_report(['--run', str(reference[0]), '--out', str(tmp_path/'report')])
    before = tree(tmp_path/'report'); capsys.readouterr()
    monkeypatch.setattr(store, 'open', FullDisk(1000), raising=False)
    with pytest.raises(SystemExit) as e: kd_report(['--run', str(reference[0]), '--out', str(tmp_path/'report')])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"kd_report: error: cannot write {tmp_path/'report'}") and 'No space left on device' in err[-1], err
    assert tree(tmp_path/'report') == before  # every earlier file whole, no temporary one left
    (tmp_path/'bench.json').write_text('{"ratio": 2.0}')
    monkeypatch.setattr(benchmark, 'bench', lambda *a, **kw: {'ratio': 1.5})  # the comparison itself is not what is tested
    with pytest.raises(SystemExit) as e: kd_bench(['--data', 'sample', '--out', str(tmp_path/'bench.json')])
    assert e.value.code == 1
    said = one_line(capsys.readouterr().err)
    assert said.startswith(f"kd_bench: error: cannot write {tmp_path/'bench.json'} (No space left on device)"), said
    assert (tmp_path/'bench.json').read_text() == '{"ratio": 2.0}' and not list(tmp_path.glob('*.tmp'))

def test_an_error_raised_in_training_after_work_began_exits_1_and_says_how_to_resume(bad, tmp_path):
    "A BatchNorm1d student meets a last batch of one image (65 = 64 + 1) after the teacher finished: exit 1, what is kept, --resume."
    out = tmp_path/'run'
    p = kd_run('--experiments', 'teacher,student_ce', '--student-model', 'own_models:bn_student', '--data', 'sample', '--device', 'cpu',
               '--train-size', '65', '--test-size', '20', '--batch-size', '64', '--epochs', '1', '--out', out, '--quiet', env=OWN_MODELS(bad))
    assert p.returncode == 1, p.stderr
    said = one_line(p)
    assert said.startswith('kd_run: error: student_ce (seed 42) failed in training: ValueError: Expected more than 1 value per channel'), said
    assert f"finished experiments are kept in {out/'results.json'}" in said and '--resume' in said, said
    assert list(results(out)['runs']) == ['teacher'] and (out/'teacher.pt').exists()

@pytest.mark.parametrize('where', ['history.csv', 'tensorboard'])
def test_an_output_path_in_the_way_is_refused_before_the_teacher_trains(where, tmp_path):
    "history.csv as a folder, tensorboard as a file: found before any work, exit 2, nothing written."
    out = tmp_path/'run'; out.mkdir()
    (out/where).mkdir() if where == 'history.csv' else (out/where).write_text('')
    p = kd_run('--experiments', 'teacher', *SMALL, '--out', out)
    assert p.returncode == 2, p.stderr
    assert one_line(p).startswith(f"kd_run: error: {out/where} is a {'folder where kd_run writes a file' if where == 'history.csv' else 'file where kd_run keeps its tensorboard folder'}")
    assert sorted(q.name for q in out.iterdir()) == [where]

def test_a_run_of_one_experiment_prints_no_warning(tmp_path):
    "The teacher alone: no matplotlib warning about identical axis limits (nor any other) on stderr."
    p = kd_run('--experiments', 'teacher', *SMALL[:-2], '--epochs', '1', '--out', tmp_path/'run', '--quiet')
    assert p.returncode == 0 and p.stderr == '', p.stderr


def test_a_run_says_its_data_device_precision_and_threads_once_checked(tmp_path):
    "One line when the work begins (after every check, so a refused run says only why): data, device, precision, threads."
    p = kd_run('--experiments', 'teacher', *SMALL[:-2], '--epochs', '1', '--out', tmp_path/'run')
    assert p.returncode == 0, p.stderr
    said = [l for l in p.stderr.splitlines() if l.startswith('data ')]
    assert len(said) == 1, p.stderr
    for w in ('sample', '512 training, 200 test images', 'device cpu', 'precision ', 'CPU threads'): assert w in said[0], (w, said[0])


# ## Files that lie: the right format, the wrong structure

@pytest.mark.parametrize('content', ['[]', '{"runs": {"teacher": {"42": {"accuracy": "high"}}}, "seeds": [42]}',
                                     'TOTAL_SECONDS', 'FOLDER'], ids=['a_list', 'text_accuracy', 'text_seconds', 'a_folder'])
def test_a_results_json_of_the_wrong_structure_is_refused(reference, tmp_path, content):
    out = tmp_path/'run'; shutil.copytree(reference[0], out)
    (out/'results.json').unlink()
    if content == 'FOLDER': (out/'results.json').mkdir()
    else:
        if content == 'TOTAL_SECONDS': content = json.dumps({**reference[1], 'total_seconds': '12 s'})
        (out/'results.json').write_text(content)
    before = tree(out)
    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 2, p.stderr
    assert one_line(p).startswith('kd_run: error: ') and str(out/'results.json') in p.stderr, p.stderr
    assert tree(out) == before


@pytest.mark.parametrize('content', ['a_list', 'a_tensor', 'a_folder'])
def test_a_teacher_pt_of_the_wrong_structure_is_refused(reference, tmp_path, content):
    out = tmp_path/'run'; shutil.copytree(reference[0], out)
    (out/'teacher.pt').unlink()
    if content == 'a_folder': (out/'teacher.pt').mkdir()
    else: torch.save([torch.zeros(3)] if content == 'a_list' else torch.zeros(3), out/'teacher.pt')
    before = tree(out)
    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 2, p.stderr
    assert one_line(p).startswith(f"kd_run: error: {out/'teacher.pt'}"), p.stderr
    assert tree(out) == before


def test_a_checkpoint_with_the_right_keys_and_the_wrong_contents_is_ignored(reference, tmp_path):
    "A student_kd checkpoint whose fingerprint matches but whose weights are a bare tensor: ignored, the experiment trained afresh."
    out = tmp_path/'run'; shutil.copytree(reference[0], out)
    res = results(out); res['runs'] = {'teacher': res['runs']['teacher']}
    (out/'results.json').write_text(json.dumps(res))
    ckpt = torch.load(out/'checkpoints'/'student_kd_seed42.pt', weights_only=True)
    torch.save({**ckpt, 'student': torch.zeros(3)}, out/'checkpoints'/'student_kd_seed42.pt')
    (out/'checkpoints'/'student_cosine_seed42.pt').unlink()
    p = kd_run(*RUN, '--out', out, '--resume')
    assert p.returncode == 0, p.stderr
    assert 'student_kd_seed42.pt: its contents do not fit this run' in p.stderr
    assert_same_runs(results(out), reference[1])


def test_teacher_weights_are_named_only_when_the_run_wrote_them(reference, tmp_path):
    "A student-only run in a folder that happens to hold a teacher.pt does not present it as its own."
    out = tmp_path/'run'; out.mkdir(); shutil.copy(reference[0]/'teacher.pt', out/'teacher.pt')
    p = kd_run('--experiments', 'student_ce', *SMALL[:-2], '--epochs', '1', '--out', out, '--quiet')
    assert p.returncode == 0, p.stderr
    assert f"Results: {out/'results.json'}" in p.stdout and 'teacher weights' not in p.stdout


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


# ## The training commands share their options

def options(parser) -> set:
    "Every option string a parser takes."
    return {o for a in parser._actions for o in a.option_strings}

def test_kd_sweep_offers_every_training_option_of_kd_run():
    "kd_run and kd_sweep take their options from the same dataclasses: what kd_run trains with, kd_sweep can set."
    not_for_a_sweep = {'--experiments',  # a sweep trains the baseline and its method's cells
                       '--seed',         # a sweep takes --seeds
                       '--resume'}       # a sweep always continues where it stopped
    run, sweep = options(kd_run_here.parser()), options(kd_sweep.parser())
    assert {'--lr', '--batch-size', '--epochs', '--T', '--set', '--data', '--train-size', '--eval-every'} <= run
    assert run - not_for_a_sweep <= sweep, sorted(run - not_for_a_sweep - sweep)
    assert not_for_a_sweep <= run  # each one named here is really one of kd_run's


def test_kd_bench_passes_kd_run_only_options_it_has():
    "The options kd_bench gives its kd_run side are kd_run's."
    given = {a for a in ours_command('c.npz', 2, 512, 'out', eval_every=2) if a.startswith('--')}
    assert given and given <= options(kd_run_here.parser()), sorted(given - options(kd_run_here.parser()))


def test_kd_sweep_sets_what_kd_run_sets(tmp_path):
    "--lr, --batch-size, a tutorial method's own option and --set reach the sweep's settings as they reach kd_run's."
    o, s, m = kd_sweep.parse(['--teacher', 't.pt', '--grid', 'kd.T=1,2', '--lr', '0.01', '--batch-size', '64',
                              '--soft-weight', '0.25', '--set', 'kd.ce_weight=0.75', '--faithful'])
    s = training_settings(s, o, m)
    assert (s.lr, s.batch_size, s.precision, s.teacher_cache) == (0.01, 64, 'fp32', False)
    assert (s.method('kd').soft_weight, s.method('kd').ce_weight) == (0.25, 0.75)


COMMANDS = {'kd_run': 'experiments', 'kd_sweep': 'sweep', 'kd_bench': 'benchmark', 'kd_report': 'results',
            'kd_leaderboard': 'leaderboard', 'kd_export': 'export', 'kd_predict': 'classify', 'kd_deploy': 'deployment',
            'kd_docs': 'dev.docs'}

@pytest.mark.parametrize('name', COMMANDS)
def test_a_bad_option_is_one_line_and_exit_2(name, tmp_path):
    "Every command refuses an option it does not know (or a missing one it needs) with one line and exit code 2."
    p = subprocess.run([sys.executable, '-c', f'from kd_nbdev.{COMMANDS[name]} import main; main()', '--no-such-option'],
                       cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == '', p.stderr
    assert one_line(p).startswith(f'{name}: error: ') and f'(see {name} --help)' in p.stderr
    assert list(tmp_path.iterdir()) == []
