# Sphinx configuration of the offline docs site that `kd_docs` builds (see nbs/90_docs.ipynb).
# Its sources are nbdev's processed notebooks, converted by `kd_nbdev.dev.site.write_sources`.
from pathlib import Path
from nbdev.config import get_config

cfg = get_config(path=Path(__file__).resolve().parent)
project = cfg.title
author = cfg.author
copyright = cfg.copyright
version = release = cfg.version

extensions = ['myst_nb', 'sphinx.ext.githubpages',  # githubpages: a .nojekyll, so GitHub Pages serves _static/
              'sphinx.ext.mathjax', 'sphinx-mathjax-offline']  # formulas by MathJax, copied from the package: no CDN
root_doc = 'index'
exclude_patterns = ['**/.ipynb_checkpoints']

nb_execution_mode = 'off'           # show the outputs saved in the notebooks, never run them here
nb_render_markdown_format = 'myst'  # Markdown outputs (result tables) rendered with tables
nb_merge_streams = True
nb_mime_priority_overrides = [('html', 'text/latex', None)]  # LaTeX outputs would need MathJax from a CDN
myst_enable_extensions = ['dollarmath', 'amsmath']  # $...$ and $$...$$ formulas in Markdown
myst_heading_anchors = 3            # links like [text](02_training.ipynb#a-heading)
# show_doc writes `###` headings under the page's `#` title, as Quarto accepts; MyST would warn of the skipped level
suppress_warnings = ['myst.header']

html_theme = 'furo'                 # all its assets are local: no web fonts, no CDN scripts
html_title = cfg.title
html_static_path = ['_static']
html_css_files = ['kd_docs.css']
html_favicon = '_static/favicon.svg'     # else the browser asks for /favicon.ico and logs a 404
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
