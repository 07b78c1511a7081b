"""No committed file names a folder of the machine it was made on: the package must work from a `pip install`
elsewhere, and its records, docs and notebooks must read the same there."""
import re, subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this project's machines keep the repository under /work and the shared data beside it; temporary folders and home
# folders are machine paths on any machine
MACHINE_PATH = re.compile(r'/work/|\.\./shared/|(?<![\w.])/tmp/|/home/\w|/root/|/Users/\w')
SKIP = {'tests/test_paths.py', '.ci/run'}  # this pattern itself; the CI script's own temporary folders

def committed_text_files():
    names = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split('\n')
    for n in filter(None, names):
        p = ROOT/n
        if n in SKIP or not p.is_file() or p.suffix in {'.png', '.npz', '.pt', '.ico', '.svg'}: continue
        try: yield n, p.read_text()
        except UnicodeDecodeError: continue

def test_no_committed_file_names_a_folder_of_this_machine():
    found = [f"{n}:{text.count(chr(10), 0, m.start()) + 1}: {text[max(0, m.start() - 40):m.end() + 40]!r}"
             for n, text in committed_text_files() for m in MACHINE_PATH.finditer(text)]
    assert not found, f"{len(found)} machine paths, e.g.:\n" + '\n'.join(found[:20])
