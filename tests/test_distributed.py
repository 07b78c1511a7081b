"""`kd_run` under torchrun, two processes on the CPU (gloo): one rank killed, the run resumed, the same numbers.

Run with `pytest tests/test_distributed.py` (about a minute on two cores). Like tests/test_cli.py, no test depends on
how fast the machine is: the run stops itself at a named point (`KD_NBDEV_TEST_PAUSE`) and waits there.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from kd_nbdev import store
from kd_nbdev.rundir import LOCK
from test_cli import KD_RUN, ENV, results, history

TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '--no-python', *KD_RUN]
EXPERIMENTS = ['teacher', 'student_kd', 'student_cosine']
RUN = ['--experiments', ','.join(EXPERIMENTS), '--data', 'sample', '--device', 'cpu', '--train-size', '256',
       '--test-size', '100', '--epochs', '2', '--batch-size', '127']  # 64 and 63 images: the processes' dropout draws differ

LAUNCHED = []  # every torchrun started: its whole process group killed when the test ends (`no_process_left`)

def torchrun(*args, env=ENV, **kw):
    "Start `kd_run` in two processes (torchrun), in a process group of their own; return the launcher's process."
    proc = subprocess.Popen([*TORCHRUN, *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)
    LAUNCHED.append(proc)
    return proc

@pytest.fixture(autouse=True)
def no_process_left():
    "However the test ends, the launcher and its workers are gone after it (a `finally`): one killed rank must not leave the other waiting."
    yield
    while LAUNCHED:
        proc = LAUNCHED.pop()
        try: os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        proc.communicate()

def finished(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.interruption
def test_killing_one_rank_then_resume_gives_the_uninterrupted_result(tmp_path):
    "Process 0 killed (SIGKILL) after its first student checkpoint: torchrun stops the other; `--resume` finishes as an uninterrupted run."
    rc, _, err = finished(torchrun(*RUN, '--quiet', '--out', tmp_path/'ref'))
    assert rc == 0, err
    ref = results(tmp_path/'ref')
    assert (ref['world_size'], ref['backend'], ref['devices']) == (2, 'gloo', ['cpu', 'cpu'])

    out, marker = tmp_path/'run', tmp_path/'paused'
    proc = torchrun(*RUN, '--quiet', '--out', out, env={**ENV, store.PAUSE_VARIABLE: f'checkpoint student_kd_seed42 1={marker}'})
    t0 = time.monotonic()
    while not marker.exists():  # process 0 waits there (the other waits for it): however slow the machine, it is there then
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() - t0 < 600, 'timed out waiting for the pause marker'
        time.sleep(0.01)
    rank0 = int(marker.read_text())
    os.kill(rank0, signal.SIGKILL)
    rc, _, _ = finished(proc)
    assert rc != 0  # torchrun reports the lost process and ends the other
    assert list(results(out)['runs']) == ['teacher']
    assert json.loads((out/LOCK).read_text())['pid'] == rank0  # a killed run cannot remove its lock

    rc, stdout, err = finished(torchrun(*RUN, '--out', out, '--resume'))
    assert rc == 0, err
    assert 'student_kd: resuming after epoch 1' in err and stdout.count('| teacher |') == 1
    res = results(out)
    for name in EXPERIMENTS:  # every number, each process's dropout included
        assert res['runs'][name]['42']['accuracy'] == ref['runs'][name]['42']['accuracy'], name
        assert history(res, name) == history(ref, name), name
    assert not (out/LOCK).exists()
