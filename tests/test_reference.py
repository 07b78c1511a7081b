"""The tutorial's procedure shipped with the package (`kd_nbdev.reference`) gives the accuracies of the project's own
reference script, on the same data with the same seed.

The project's reference script lives in a `shared/bench/` folder beside the repository on the machines this project
is developed on; elsewhere this test is skipped."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
import kd_nbdev.reference
from kd_nbdev.data import SAMPLE_PATH

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p/'shared'/'bench'/'tutorial_reference.py' for p in ROOT.parents
               if (p/'shared'/'bench'/'tutorial_reference.py').is_file()), None)

def reference_accuracies(script, tmp_path, name):
    out = tmp_path/f'{name}.json'
    p = subprocess.run([sys.executable, str(script), '--npz', str(SAMPLE_PATH), '--epochs', '1', '--train-subset', '300',
                        '--out', str(out)], capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'},
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return {k: v['accuracy'] for k, v in json.loads(out.read_text())['summary'].items()}

@pytest.mark.skipif(SHARED is None, reason="the project's shared/bench/tutorial_reference.py is not beside this repository")
def test_the_shipped_reference_gives_the_shared_scripts_accuracies(tmp_path):
    ours = reference_accuracies(kd_nbdev.reference.__file__, tmp_path, 'shipped')
    theirs = reference_accuracies(SHARED, tmp_path, 'shared')
    assert set(ours) == {'teacher', 'student_ce', 'student_kd', 'student_cosine', 'student_regressor'}
    assert ours == theirs
