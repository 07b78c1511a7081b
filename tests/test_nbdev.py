"""nbdev's own `nbdev_prepare` on a fresh clone without Quarto.

nbdev_prepare exports, tests, cleans, then renders README.md with Quarto if README.md is older than the index
notebook, as a fresh clone can leave it. Here it runs in a fresh clone of the committed HEAD with the index notebook
touched and no Quarto on PATH. Its notebook tests (`nbdev_test`, ten minutes here) are left out: the README's test
command and CI run them."""
import os, shutil, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='module')
def clone(tmp_path_factory):
    "A fresh clone of the committed HEAD, its index notebook newer than its README."
    if not (ROOT/'.git').exists(): pytest.skip('not a git checkout')
    head = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
    dest = tmp_path_factory.mktemp('clone')/'kd_nbdev'
    subprocess.run(['git', 'clone', '-q', '--no-checkout', str(ROOT), str(dest)], check=True)
    subprocess.run(['git', '-C', str(dest), 'checkout', '-q', head], check=True)
    time.sleep(0.01)
    (dest/'nbs'/'index.ipynb').touch()
    assert (dest/'README.md').stat().st_mtime < (dest/'nbs'/'index.ipynb').stat().st_mtime
    return dest

def test_nbdev_prepare_without_quarto(clone):
    path = os.pathsep.join([str(Path(sys.executable).parent), '/usr/bin', '/bin'])
    assert shutil.which('quarto', path=path) is None, 'quarto is installed: this test is about its absence'
    env = {**os.environ, 'PATH': path, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'HOME': str(clone.parent)}
    # nbdev's `prepare` itself, with its `nbdev_test` step left out (see the module's docstring)
    code = ("import nbdev.test, nbdev.quarto\n"
            "nbdev.test.nbdev_test.__wrapped__ = lambda *a, **k: print('(nbdev_test left out)')\n"
            "nbdev.quarto.prepare.__wrapped__()\n")
    res = subprocess.run([sys.executable, '-c', code], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f'nbdev_prepare failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}'
    assert 'quarto' not in (res.stdout + res.stderr).lower(), res.stdout + res.stderr
    # and it changed nothing that is committed: the package is the export, the notebooks are clean, README.md stays
    status = subprocess.run(['git', '-C', str(clone), 'status', '--porcelain'], capture_output=True, text=True).stdout
    assert not status.strip(), f'nbdev_prepare changed committed files:\n{status}'
