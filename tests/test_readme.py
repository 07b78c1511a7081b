"""Every command of the README, as written, in a fresh clone of this repository: none may change the clone's own files.

The commands are the README's markers (`<!-- main-command: -->`, `<!-- offline: -->`, `<!-- try: -->`), which
.ci/run reads too; every line of the README's `sh` blocks must be one of them or be left out here for a stated reason.
The data is the shipped sample (`KD_NBDEV_DATA=sample`, as .ci/run runs the main command), so this takes a few
minutes. The clone is of the committed state: commit before running it.
"""
import os, re, shutil, subprocess, sys, tempfile
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT/'README.md').read_text()

# README lines that this test does not run, and why
NOT_RUN = {
    'pip install': 'installs: the environment running the tests already has the package and its extras',
    'nbdev_test': "the test command: this test is part of it",
    'torchrun': 'several processes: tests/test_distributed.py runs them',
    'kd_run --recipe cifar-sgd': 'full-size recipe examples (30 epochs): the recipes chapter runs recipes on the sample',
    'kd_run --optimizer adamw': 'full-size recipe examples: the recipes chapter runs recipes on the sample',
    'kd_sweep --teacher teacher.pt': "needs the user's own teacher.pt: the sweep chapter runs kd_sweep on the sample",
}

def marked(kind:str) -> list[str]:
    "The commands of the README's `<!-- kind: ... -->` markers, in order."
    return re.findall(rf'^<!-- {kind}: (.*) -->$', README, re.M)

def sh_lines() -> list[str]:
    "Every command line of the README's `sh` blocks, comments cut."
    blocks = re.findall(r'^```sh\n(.*?)^```', README, re.M | re.S)
    return [l.split('  #')[0].strip() for b in blocks for l in b.splitlines() if l.strip()]

def without_install(cmd:str) -> str:
    "`cmd` less its leading `pip install ... &&` parts."
    parts = [p.strip() for p in cmd.split('&&')]
    return ' && '.join(p for p in parts if not p.startswith('pip install'))

def test_every_readme_command_is_run_or_excused():
    run = {without_install(c) for kind in ('main-command', 'offline', 'try') for c in marked(kind)}
    for line in sh_lines():
        cmd = without_install(line)
        assert not cmd or cmd in run or any(cmd.startswith(k) or line.startswith(k) for k in NOT_RUN), \
            f"README command neither run by tests/test_readme.py nor excused in its NOT_RUN: {line}"

def test_readme_commands_leave_a_fresh_clone_clean():
    main, offline, tries = marked('main-command'), marked('offline'), marked('try')
    assert len(main) == 1 and offline and tries
    tmp = Path(tempfile.mkdtemp(prefix='kd_readme_'))
    try:
        clone = tmp/'kd_nbdev'
        subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
        env = {**os.environ, 'KD_NBDEV_DATA': 'sample', 'PYTHONPATH': str(clone), 'HOME': str(tmp/'home'),
               'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1'}
        (tmp/'home').mkdir()
        def sh(cmd):
            cmd = without_install(cmd)
            if not cmd: return
            r = subprocess.run(['bash', '-c', cmd], cwd=clone, env=env,
                               capture_output=True, text=True)
            assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
            return r
        for c in main + offline: sh(c)
        # pictures of one's own, for kd_predict: five of the sample's test images as PNG files (this test's, not a command's)
        from PIL import Image
        from kd_nbdev.data import SAMPLE_PATH
        (clone/'pictures').mkdir()
        for i, im in enumerate(np.load(SAMPLE_PATH)['x_test'][:5]): Image.fromarray(im).save(clone/'pictures'/f'test_{i}.png')
        for c in tries:
            r = sh(c)
            if c.startswith('kd_predict'): assert len(r.stdout.splitlines()) == 5, r.stdout
        shutil.rmtree(clone/'pictures')
        status = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all'], cwd=clone, capture_output=True, text=True, check=True).stdout
        assert status == '', f"the README's commands changed the clone:\n{status}"
        assert (clone/'runs/kd/report/leaderboard.json').is_file() and (clone/'runs/try/report/leaderboard.json').is_file()
    finally: shutil.rmtree(tmp, ignore_errors=True)
