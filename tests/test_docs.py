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

def _math_pages():
    "Pages whose notebook has a display formula (`$$`)."
    from kd_nbdev.dev.site import doc_pages
    return {f'{n}.html' for n in doc_pages(NBS) if '$$' in (NBS/f'{n}.ipynb').read_text()}

MATH_PAGES = _math_pages()
# the docs chapter's screenshots (nbs/90_docs.ipynb shows them): `python tests/test_docs.py --copy-screenshots` copies them
# from _screenshots/, where this test writes them, to nbs/images/
DOC_SHOTS = {'index.html': 'docs_index.png', '05a_methods/01_dkd.html': 'docs_method.png', '95_api.html': 'docs_api.png'}

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
        if page in MATH_PAGES:  # MathJax typesets after the page has loaded
            WebDriverWait(browser, 60).until(lambda d: d.execute_script(
                "return [...document.querySelectorAll('.math')].every(e => e.querySelector('mjx-container') !== null)"
                " && document.querySelector('mjx-container') !== null"),
                                             message=f'{page}: no formula typeset by MathJax 60 s after loading it')
        pages[page].update(browser.execute_script("""return {
            captions: [...document.querySelectorAll('.sidebar-tree .caption-text')].map(e => e.textContent.trim()),
            formulas: document.querySelectorAll('mjx-container').length,
            // display formulas wider than the text column (a reader would have to scroll them sideways)
            wide: [...document.querySelectorAll('mjx-container[display="true"]')]
                  .filter(c => c.querySelector('mjx-math').getBoundingClientRect().width > c.clientWidth + 1)
                  .map(c => c.textContent.slice(0, 60)),
            links: [...document.querySelectorAll('a[href]')].map(a => a.href),
            text: document.querySelector('article')?.innerText || ''};"""))
        if page == 'index.html': _screenshot(browser, SHOTS/'home.png')
        if page == '03_kd.html': _screenshot(browser, SHOTS/'03_kd.png')
        if page in DOC_SHOTS: browser.save_screenshot(str(SHOTS/DOC_SHOTS[page]))  # the first screenful: what a reader sees first
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
                const params = [...document.querySelectorAll('table')].filter(t => /Details/.test(t.rows[0]?.innerText || ''))
                    .flatMap(t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.innerText.trim())));
                return {entries, params,
                        sources: [...document.querySelectorAll('a.nbdev-source')].map(a => a.href),
                        outputs: [...document.querySelectorAll('.cell_output')].map(text),
                        inputs: [...document.querySelectorAll('.cell_input')].map(text),
                        code: [...document.querySelectorAll('article code')].map(text),
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
        name = re.escape(e['name'].split('.')[-1])  # defined by `def`, `class`, or an assignment (a constant, an alias, a command)
        if not re.search(rf'\b(def|class)\s+{name}\b|^\s*{name}\s*[:=]', code): bad.append((e['name'], e['source'], code[:80]))
    assert not bad, f'source links that do not lead to the definition: {bad}'

# Issue 25: a reference people look things up in, sections in the sidebar, formulas, no scaffolding, no dead links

def test_api_page_describes_every_parameter(looks):
    "The API page has an entry for every public name and every command, and a description in every parameter row."
    import kd_nbdev
    from nbdev.config import get_config
    api = looks['95_api']
    names = {e['name'] for e in api['entries']}
    commands = [s.split('=')[0] for s in get_config().get('console_scripts').split()]
    missing = [n for n in [*kd_nbdev._NAMES, *commands] if n not in names]
    assert not missing, f'public names or commands without an entry on the API page: {missing}'
    rows = [r for r in api['params'] if r and r[0] != 'Returns']
    assert len(rows) > 200, f'only {len(rows)} parameter rows on the API page'
    bare = [r for r in rows if not r[-1]]
    assert not bare, f'{len(bare)} of {len(rows)} parameter rows on the API page have no description: {bare}'
    assert all(e['source'] for e in api['entries'] if e['name'] in names), 'API entries without a source link'

def test_general_index_is_not_empty(site):
    import re
    entries = re.findall(r'<li><a href="[^"]*95_api.html#', (site/'genindex.html').read_text())
    assert len(entries) > 20, f'the general index has {len(entries)} entries into the API page'

def test_sidebar_has_sections(visits):
    from kd_nbdev.dev.sections import SECTIONS
    assert visits['index.html']['captions'] == list(SECTIONS), visits['index.html']['captions']

def test_formulas_are_rendered(visits):
    assert {'03_kd.html', '05a_methods/11_crd.html'} <= MATH_PAGES, MATH_PAGES
    for page in MATH_PAGES: assert visits[page]['formulas'] > 0, f'{page}: no formula rendered by MathJax'

def test_formulas_fit_the_text_column(visits):
    wide = {page: visits[page]['wide'] for page in MATH_PAGES if visits[page]['wide']}
    assert not wide, f'display formulas wider than the page\'s text column: {wide}'

def test_method_chapters_show_their_import_path(looks):
    import re
    chapters = ['03_kd', '04_cosine', '05_regressor'] + [n for n in _page_names() if n.startswith('05a_methods/')]
    bare = [c for c in chapters if not any(re.match(r'from kd_nbdev\.methods\.\w+ import ', i) for i in looks[c]['code'])]
    assert not bare, f'method chapters that do not show their import path: {bare}'

CHECKS = ('test_eq(', 'test_fail(', 'test_close(', 'test_ne(', 'assert ')

def test_method_chapters_show_a_handful_of_checks(looks):
    "The checks that teach stay on the page; the plumbing (scratch folders, subprocesses, messages) is hidden."
    chapters = ['03_kd', '04_cosine', '05_regressor'] + [n for n in _page_names() if n.startswith('05a_methods/')]
    many = {c: n for c in chapters if (n := sum(i.count(k) for i in looks[c]['inputs'] for k in CHECKS)) > 8}
    assert not many, f'method chapters with more than a handful of visible checks: {many}'

def test_no_scratch_path_reaches_a_page(visits):
    shown = {p: v['text'].count('.kd_tmp') for p, v in visits.items() if '.kd_tmp' in v['text']}
    assert not shown, f'pages that show scratch paths (.kd_tmp_*): {shown}'

def test_no_dead_internal_link(site, visits, server):
    "Every link of every page that points into the site (localhost included, whatever its port) leads to a page and anchor that exist."
    import re
    from urllib.parse import unquote
    from kd_nbdev.dev.linkcheck import dead_links
    from nbdev.config import get_config
    assert dead_links(site, (get_config().doc_host,)) == []
    ids, dead = {}, []
    for page, v in visits.items():
        for href in v['links']:
            u = urlparse(href)
            if u.scheme not in ('http', 'https') or (u.hostname not in ('localhost', '127.0.0.1', '0.0.0.0')): continue
            target = site/unquote(u.path).lstrip('/')
            if target.is_dir(): target = target/'index.html'
            if not target.is_file(): dead.append((page, href)); continue
            if u.fragment and target.suffix == '.html':
                if target not in ids: ids[target] = set(re.findall(r'\bid="([^"]+)"', target.read_text(errors='replace')))
                if unquote(u.fragment) not in ids[target]: dead.append((page, href))
    assert not dead, f'links into the site that lead nowhere: {dead}'

def test_docs_screenshots(visits):
    for name in DOC_SHOTS.values(): assert (SHOTS/name).stat().st_size > 10_000, name

if __name__ == '__main__' and sys.argv[1:] == ['--copy-screenshots']:
    import shutil
    for name in DOC_SHOTS.values(): shutil.copy(SHOTS/name, NBS/'images'/name); print(f'copied {SHOTS/name} to {NBS/"images"/name}')
