"""The web inventory for biomedical engineering: server-rendered pages at ``/``.

Jinja2 templates with autoescape, one CSS file, a little vanilla JS; login with the
collector's users (session cookie + CSRF tokens, collector/web/security.py). See docs/web.md.
"""
