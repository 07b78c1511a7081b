"""JupyterLab serves the notebooks: start `jupyter lab` on nbs/, list and open notebooks through its REST API, stop it."""
import json, os, secrets, socket, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
STARTUP_S = 300  # an upper bound for a loaded machine, not a guess of how long it takes

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _get(url, token=None):
    "Status and JSON body of a GET."
    req = urllib.request.Request(url, headers={'Authorization': f'token {token}'} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, None

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "A JupyterLab server on nbs/ at a free port with a random token; stopped afterwards whatever happens."
    scratch = tmp_path_factory.mktemp('jupyter')
    env = {**os.environ, 'HOME': str(scratch), 'JUPYTER_CONFIG_DIR': str(scratch/'config'),
           'JUPYTER_DATA_DIR': str(scratch/'data'), 'JUPYTER_RUNTIME_DIR': str(scratch/'runtime'),
           'IPYTHONDIR': str(scratch/'ipython')}
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, '-m', 'jupyter', 'lab', '--no-browser', '--allow-root', '--ip=127.0.0.1', f'--port={port}',
           f'--ServerApp.token={token}', f'--ServerApp.root_dir={NBS}', '--ServerApp.port_retries=0']
    log = open(scratch/'lab.log', 'w')
    proc = subprocess.Popen(cmd, cwd=NBS, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert proc.poll() is None, f'jupyter lab exited:\n{(scratch/"lab.log").read_text()[-3000:]}'
            try:
                if _get(f'{base}/api/status', token)[0] == 200: break
            except OSError: pass
            assert time.monotonic() < deadline, f'jupyter lab not up after {STARTUP_S}s:\n{(scratch/"lab.log").read_text()[-3000:]}'
            time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill(); proc.wait()
        log.close()

def test_needs_the_token(lab):
    base, token = lab
    assert _get(f'{base}/api/contents')[0] == 403
    assert _get(f'{base}/api/contents', 'wrong-token')[0] == 403

def test_lists_the_notebooks(lab):
    base, token = lab
    status, listing = _get(f'{base}/api/contents', token)
    assert status == 200 and listing['type'] == 'directory'
    listed = {o['name'] for o in listing['content'] if o['type'] == 'notebook'}
    on_disk = {p.name for p in NBS.glob('*.ipynb')}
    assert on_disk and listed == on_disk

def test_opens_a_notebook(lab):
    base, token = lab
    status, nb = _get(f'{base}/api/contents/03_kd.ipynb?content=1', token)
    assert status == 200 and nb['type'] == 'notebook' and nb['format'] == 'json'
    cells = nb['content']['cells']
    assert len(cells) == len(json.loads((NBS/'03_kd.ipynb').read_text())['cells']) > 0
    assert cells[0]['source'].startswith('# Knowledge distillation')

def test_every_notebook_names_its_kernel():
    "JupyterLab opens a notebook with the kernel it names, without asking: every notebook names python3."
    bad = [str(p.relative_to(NBS)) for p in NBS.rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts
           and json.loads(p.read_text())['metadata'].get('kernelspec', {}).get('name') != 'python3']
    assert not bad, f'notebooks without the python3 kernelspec: {bad}'

def test_progress_bars_in_a_kernel(tmp_path):
    "tqdm's notebook bars in a Jupyter kernel, as in Lab: ipywidgets is installed, so no `TqdmWarning: IProgress not found`."
    from jupyter_client.manager import start_new_kernel
    env = {**os.environ, 'HOME': str(tmp_path), 'IPYTHONDIR': str(tmp_path/'ipython'), 'MPLBACKEND': 'Agg'}
    km, kc = start_new_kernel(kernel_name='python3', env=env)
    try:
        msg_id = kc.execute('from tqdm.auto import tqdm\nfor _ in tqdm(range(3)): pass')
        msgs = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg['parent_header'].get('msg_id') != msg_id: continue
            if msg['msg_type'] == 'status' and msg['content']['execution_state'] == 'idle': break
            msgs.append(msg)
        text = json.dumps([m['content'] for m in msgs])
        assert 'IProgress' not in text and 'TqdmWarning' not in text, text
        assert any('application/vnd.jupyter.widget-view+json' in m['content'].get('data', {}) for m in msgs), text
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
