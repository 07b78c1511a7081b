"""The offline docs site in a headless Chromium: navigation, results table, plots, console, and no request off the machine.

Builds the site with `kd_nbdev.dev.site.build_site` unless `_docs/` is newer than everything it is built from, serves
`_docs/` from 127.0.0.1, and visits every page once. Screenshots go to `_screenshots/` (git-ignored)."""
import functools, http.server, json, os, subprocess, sys, threading
from pathlib import Path
from urllib.parse import urljoin, urlparse
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS, SITE, SHOTS = ROOT/'nbs', ROOT/'_docs', ROOT/'_screenshots'
CHROMIUM, CHROMEDRIVER = Path('/usr/bin/chromium'), Path('/usr/bin/chromedriver')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--window-size=1280,1000',
         # a request that would leave the machine fails here instead (and is still seen in the logs below)
         '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']

pytestmark = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                reason='chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)')

def _sources():
    "Everything the site is built from."
    yield from NBS.rglob('*.ipynb')
    yield from (NBS/'_sphinx').rglob('*')
    yield from (ROOT/'kd_nbdev').rglob('*.py')
    yield ROOT/'settings.ini'

def _fresh():
    "Is `_docs/` newer than everything it is built from?"
    index = SITE/'index.html'
    return index.exists() and index.stat().st_mtime >= max(p.stat().st_mtime for p in _sources() if p.is_file())

@pytest.fixture(scope='module')
def site():
    if not _fresh():
        env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}
        res = subprocess.run([sys.executable, '-c', 'from kd_nbdev.dev.site import build_site; build_site()'], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        assert res.returncode == 0, f'the docs build failed:\n{res.stdout[-5000:]}'
    return SITE

@pytest.fixture(scope='module')
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try: yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    finally:
        httpd.shutdown(); httpd.server_close()

@pytest.fixture(scope='module')
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    os.environ.setdefault('SE_OFFLINE', 'true')   # never let Selenium Manager look anything up
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for f in FLAGS: opts.add_argument(f)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL', 'performance': 'ALL'})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(300)
    try: yield driver
    finally: driver.quit()

def _requests(driver):
    "URLs the page asked for: the network log, and the performance API's resource entries."
    urls = [m['params']['request']['url'] for e in driver.get_log('performance')
            if (m := json.loads(e['message'])['message'])['method'] == 'Network.requestWillBeSent']
    urls += driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return urls

def _off_machine(url):
    p = urlparse(url)
    return p.scheme not in ('data', 'blob', 'about') and p.hostname != '127.0.0.1'

def _screenshot(driver, path):
    "A screenshot of the whole page (up to 6000 px high)."
    height = driver.execute_script('return document.documentElement.scrollHeight')
    driver.set_window_size(1280, min(max(height, 1000), 6000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)

def _page_names():
    from kd_nbdev.dev.site import doc_pages
    return [n for n in doc_pages(NBS) if n != 'index']

@pytest.fixture(scope='module')
def visits(server, browser):
    "Open the home page, then every page its navigation links to; what each page showed and asked for."
    from selenium.webdriver.support.ui import WebDriverWait
    SHOTS.mkdir(exist_ok=True)
    pages, todo = {}, ['index.html']
    while todo:
        page = todo.pop(0)
        if page in pages: continue
        browser.get_log('performance'); browser.get_log('browser')   # drop what earlier pages logged
        browser.get(urljoin(server, page))
        WebDriverWait(browser, 120).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && document.querySelector('.sidebar-tree a') !== null"),
            message=f'{page}: no navigation links 120 s after loading it')
        nav = browser.execute_script(
            "return [...document.querySelectorAll('.sidebar-tree a.reference.internal')].map(a => a.href)")
        nav = [urlparse(u).path.lstrip('/') or 'index.html' for u in nav if u.startswith(server)]
        pages[page] = dict(
            title=browser.title, nav=nav, requests=_requests(browser),
            console=[e for e in browser.get_log('browser') if e['level'] == 'SEVERE'],
            tables=browser.execute_script("return [...document.querySelectorAll('table')].map(t => t.innerText)"),
            images=browser.execute_script("return [...document.images].map(i => [i.currentSrc, i.complete, i.naturalWidth])"),
            plots=browser.execute_script(
                "return [...document.querySelectorAll('.cell_output img')].filter(i => i.complete && i.naturalWidth > 0).length"))
        if page == 'index.html': _screenshot(browser, SHOTS/'home.png')
        if page == '03_kd.html': _screenshot(browser, SHOTS/'03_kd.png')
        todo += [p for p in nav if p not in pages]
    return pages

def test_every_notebook_is_in_the_navigation(visits):
    home_nav = visits['index.html']['nav']
    missing = [n for n in _page_names() if f'{n}.html' not in home_nav]
    assert not missing, f'notebooks without a page in the navigation: {missing}'
    for n in _page_names(): assert visits[f'{n}.html']['title'], n

def test_home_page_shows_the_results_table(visits):
    tables = visits['index.html']['tables']
    assert any('student_kd' in t and 'accuracy' in t for t in tables), (
        "the home page shows no results table (a <table> with 'student_kd' and 'accuracy'): nbs/index.ipynb should "
        f"display the comparison as Markdown (an output, not printed text). Tables found: {tables}")

def test_plots_load(visits):
    assert sum(v['plots'] for v in visits.values()) > 0, 'no page shows a plot'
    broken = {p: [i for i in v['images'] if not (i[1] and i[2] > 0)] for p, v in visits.items()}
    assert not any(broken.values()), f'images that did not load: {broken}'

def test_no_console_errors(visits):
    errors = {p: v['console'] for p, v in visits.items() if v['console']}
    assert not errors, errors

def test_no_request_leaves_the_machine(visits):
    assert all(v['requests'] for v in visits.values())   # the logs do record requests
    foreign = {p: sorted({u for u in v['requests'] if _off_machine(u)}) for p, v in visits.items()}
    assert not any(foreign.values()), f'requests to hosts other than 127.0.0.1: {foreign}'

def test_screenshots(visits):
    for name in ('home.png', '03_kd.png'): assert (SHOTS/name).stat().st_size > 10_000, name

# What a page of the site should look like, as on an nbdev site: every check below failed on the site before
# issue 16 (classes shown as `def`, "Call self as a function.", raw Markdown tables, no parameter tables,
# code scrolling sideways, the test imports at the top of every chapter)

@pytest.fixture(scope='module')
def looks(server, browser):
    "For every page, at a window 1400 px wide: its API entries, printed output, code blocks' overflow, visible code."
    browser.set_window_size(1400, 1000)
    pages = {}
    try:
        for page in ['index'] + _page_names():
            browser.get(urljoin(server, f'{page}.html'))
            pages[page] = browser.execute_script("""
                const text = e => e.innerText;
                const entries = [...document.querySelectorAll('section')].filter(s => s.querySelector(':scope > h3'))
                    .map(s => ({name: s.querySelector(':scope > h3').textContent.replace('¶', '').trim(),
                                sig: s.querySelector(':scope > div.highlight-python pre')?.innerText || '',
                                source: s.querySelector(':scope > p > a.nbdev-source')?.href || '',
                                text: s.innerText,
                                table: [...s.querySelectorAll(':scope > table, :scope > div > table')]
                                       .some(t => /Type/.test(t.innerText) && /Default/.test(t.innerText) && /Details/.test(t.innerText))}));
                return {entries,
                        sources: [...document.querySelectorAll('a.nbdev-source')].map(a => a.href),
                        outputs: [...document.querySelectorAll('.cell_output')].map(text),
                        inputs: [...document.querySelectorAll('.cell_input')].map(text),
                        scrolling: [...document.querySelectorAll('pre')].filter(p => p.scrollWidth > p.clientWidth + 1)
                                   .map(p => p.innerText.split('\\n').reduce((a, b) => a.length > b.length ? a : b).slice(0, 80))};""")
    finally: browser.set_window_size(1280, 1000)
    return pages

def test_classes_are_not_shown_as_functions(looks):
    bad = {p: [e['sig'].split('\n')[0] for e in v['entries']  # a capitalised name is a class; `Class.method` (a patched method) is not
               if e['sig'].startswith('def ') and e['name'][:1].isupper() and '.' not in e['name']]
           for p, v in looks.items()}
    assert not any(bad.values()), f'classes rendered as `def`: {bad}'
    assert any(e['sig'].startswith('class DeepNN(') for e in looks['01_models']['entries'])

def test_no_borrowed_docstrings(looks):
    bad = [p for p, v in looks.items() if any('Call self as a function' in e['text'] for e in v['entries'])]
    assert not bad, f'API entries with the docstring of their type ("Call self as a function."): {bad}'

def test_printed_markdown_tables_are_rendered(looks):
    raw = {p: [o[:120] for o in v['outputs'] if '|---' in o or '|:--' in o] for p, v in looks.items()}
    assert not any(raw.values()), f'Markdown tables shown as text: {raw}'

@pytest.mark.parametrize('chapter, module, names', [('02_training', 'training', {'fit'}), ('01d_evaluation', 'evaluation', {'evaluate', 'predict'})])
def test_training_chapter_has_parameter_tables(looks, chapter, module, names):
    import importlib, inspect
    mod = importlib.import_module(f'kd_nbdev.{module}')
    public = [n for n in mod.__all__ if inspect.isfunction(getattr(mod, n))]
    entries = {e['name']: e for e in looks[chapter]['entries']}
    assert names <= set(public)
    missing = [n for n in public if not entries.get(n, {}).get('table')]
    assert not missing, f'public functions of the {chapter} chapter without a parameters table: {missing}'
    if module == 'training': assert 'the model being trained' in entries['fit']['text']   # the docments are in it

def test_code_does_not_scroll_sideways(looks):
    wide = {p: v['scrolling'] for p, v in looks.items() if v['scrolling']}
    assert not wide, f'code blocks that scroll sideways at 1400 px: {wide}'

def test_test_imports_are_hidden(looks):
    shown = [p for p, v in looks.items() if any('from fastcore.test import' in i for i in v['inputs'])]
    assert not shown, f'pages that show the import of the test helpers: {shown}'

def test_source_links_lead_to_the_definition(looks, server):
    "Every API entry of the training chapter links to its source; every source link, to the line that defines the name."
    import re, urllib.request
    entries = looks['02_training']['entries']
    assert entries and all(e['source'] for e in entries), [e['name'] for e in entries if not e['source']]
    pages, bad = {}, []
    for e in (e for v in looks.values() for e in v['entries'] if e['source']):
        url, _, line = e['source'].partition('#')
        assert url.startswith(server), e['source']   # a page of this site, not a repository
        if url not in pages: pages[url] = urllib.request.urlopen(url).read().decode()
        m = re.search(rf'id="{line}"[^>]*></a>(.*?)(?:<a id=|</pre>)', pages[url], re.S)
        code = re.sub(r'<[^>]+>', '', re.sub(r'<span class="linenos">.*?</span>', '', m.group(1))) if m else ''
        if not re.search(rf'\b(def|class)\s+{re.escape(e["name"].split(".")[-1])}\b', code): bad.append((e['name'], e['source'], code[:80]))
    assert not bad, f'source links that do not lead to the definition: {bad}'
