"""Sphinx configuration: ``make docs`` builds docs/_build/html.

The pages are the Markdown files in this directory (MyST); the API reference
(api.rst) is generated from the docstrings of the gevent_c that Python imports,
so build it with gevent_c installed (``make docs`` uses the editable install in
.venv).
"""
import gevent_c

project = 'gevent_c'
author = 'the gevent_c authors'
copyright = '2026, the gevent_c authors'
release = version = gevent_c.__version__

extensions = ['sphinx.ext.autodoc', 'myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']
myst_heading_anchors = 3
autodoc_default_options = {'members': True, 'undoc-members': False}
autodoc_member_order = 'groupwise'
autodoc_docstring_signature = False   # done by _signature below
# Sphinx 9's new autodoc drops a signature that autodoc-process-signature
# supplies for an object whose own is unknown (C functions): the classic one
# keeps it.
autodoc_use_legacy_class_based = True

# blocks without a language (shell lines, bench output) stay plain text
highlight_language = 'text'

html_theme = 'alabaster'
html_title = 'gevent_c %s' % release
html_static_path = ['_static']
html_css_files = ['custom.css']
html_theme_options = {
    'page_width': '1240px',
    'sidebar_width': '230px',
    'description': 'gevent.hub in C, on libuv',
}

# Most docstrings written in C start with "name(signature): what it does".
# Sphinx only takes a first line that is a bare signature, and would read the
# "*args" in the rest as emphasis: split such a line into the signature and
# the text.
import re  # noqa: E402

_SIG = re.compile(r'^\s*(?P<name>[A-Za-z_]\w*)\((?P<args>[^()]*)\)'
                  r'(?:\s*->\s*(?P<ret>[^:]+?))?\s*(?::\s*(?P<rest>.*))?$')


def _leading_signature(name, obj):
    doc = getattr(obj, '__doc__', None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    m = _SIG.match(doc.strip().splitlines()[0])
    if m and m.group('name') == name.rsplit('.', 1)[-1]:
        return m
    return None


def _signature(app, what, name, obj, options, signature, return_annotation):
    m = _leading_signature(name, obj)
    if m and not signature:
        return '(%s)' % m.group('args'), m.group('ret') or return_annotation
    return signature, return_annotation


def _docstring(app, what, name, obj, options, lines):
    m = _leading_signature(name, obj)
    if m and lines and _SIG.match(lines[0]):
        # the rest of that line is plain text: "call func(*args)"
        lines[0] = (m.group('rest') or '').replace('*', r'\*')


# Wide content (custom.css): each table goes into a <div class="table-scroll">
# that scrolls sideways inside the text column when the table cannot be
# narrower; a short cell (a number, "1.36 us / 1.49 us", a single name)
# never wraps, so only prose wraps.  Charts (docs/performance*.png) are scaled down to the
# column: every image without a size gets one (width 100%, capped by the CSS
# at its own width), so that the HTML builder links it to its full-size
# file (html_scaled_image_link) and a click opens it at full size.
_SHORT_CELL = 24
_NAME_CELL = 40   # one word: a variable or a path


def _wide_content(app, doctree, docname):
    from docutils import nodes
    for table in list(doctree.findall(nodes.table)):
        if 'table-scroll' in table.parent.get('classes', ()):
            continue
        # Markdown's |---|---| gives every column the same width: let the
        # browser size the columns by their content instead
        table['classes'] = [c for c in table['classes'] if c != 'colwidths-given']
        table['classes'].append('colwidths-auto')
        box = nodes.container(classes=['table-scroll'])
        table.parent.replace(table, box)   # (replace_self would copy the table's classes)
        box.append(table)
        for entry in table.findall(nodes.entry):
            text = entry.astext().strip()
            if len(text) <= _SHORT_CELL or (len(text) <= _NAME_CELL and not any(
                    c.isspace() for c in text)):
                entry['classes'].append('nowrap')
    for node in doctree.findall(nodes.image):
        if not any(key in node for key in ('scale', 'width', 'height')):
            node['width'] = '100%'


def setup(app):
    app.connect('doctree-resolved', _wide_content)
    app.connect('autodoc-process-signature', _signature)
    app.connect('autodoc-process-docstring', _docstring)
