"""The NIS2 document as Markdown and as one self-contained HTML page.

Both print the tables of ``agent.nis2.tables`` in the same order. Every cell is text from
the wire at one remove (host names, vendor strings, AE titles): Markdown cells escape what
Markdown or inline HTML would read (``| \\ * _ ` [ ] < > &``, line breaks); HTML escapes
everything with ``html.escape`` and carries a Content-Security-Policy that allows no
script, no external resource (the page has none: inline CSS, server-side SVG).
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from agent.nis2.tables import (
    Table,
    controls_table,
    encryption_tables,
    peers_table,
    register_table,
    violations_table,
    zone_table,
)
from agent.nis2.zoneflow import zone_svg

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


# ---- Markdown -----------------------------------------------------------------------------------
def md_text(text: str) -> str:
    text = _LINE_BREAKS.sub(" ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_table(table: Table, level: str = "###") -> list[str]:
    out = [f"{level} {md_text(table.title)}", ""]
    if table.note:
        out += [md_text(table.note), ""]
    if not table.rows:
        return [*out, "(none)", ""]
    out.append("| " + " | ".join(md_text(h) for h in table.headers) + " |")
    out.append("|" + "---|" * len(table.headers))
    out += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in table.rows]
    return [*out, ""]


def _intro(doc: dict[str, Any]) -> list[tuple[str, str]]:
    src, pol = doc["source"], doc["policy"]
    items = [
        ("Generated", f"{doc['generated_at']} by medtap {doc['medtap_version']}"),
        ("Source", f"{src['kind']}: {', '.join(src['inputs'])}"),
        ("Observed", f"{src['first_seen'] or '-'} to {src['last_seen'] or '-'}"),
    ]
    if pol is None:
        items.append(("Policy", "none given: zones, violations and restricted communication "
                                "are not assessed"))
    else:
        items.append(("Policy", f"{pol['source']}: zones {', '.join(pol['zones'])}; "
                                f"{pol['rules']} rules; require TLS: "
                                f"{', '.join(pol['rules_requiring_tls']) or 'none'}; "
                                f"guest zones: {', '.join(pol['guest_zones']) or 'none'}"))
    s = doc["summary"]
    items.append(("Inventory", f"{s['devices']} devices in {s['asset_groups']} asset groups; "
                               f"{s['medical_devices']} medical devices, "
                               f"{s['medical_devices_outdated']} with outdated software, "
                               f"{s['medical_devices_restriction_broken']} with broken "
                               f"restrictions; {s['violations']} violations"))
    return items


def render_markdown(doc: dict[str, Any]) -> str:
    out = [f"# {md_text(doc['title'])}", ""]
    out += [f"- **{k}:** {md_text(v)}" for k, v in _intro(doc)]
    out += ["", "## 1. Encryption in transit", ""]
    out += [f"- {md_text(s)}" for s in doc["summary"]["encryption"]] or ["No clinical flows."]
    out.append("")
    for table in encryption_tables(doc):
        out += _md_table(table)
    out += ["## 2. Compensating controls per medical device", ""]
    out += _md_table(controls_table(doc))
    for control in doc["controls"]:
        out += _md_table(peers_table(control), "####")
    out += ["## 3. Asset register", ""]
    out += _md_table(register_table(doc))
    out += ["## Zones and violations", ""]
    out += _md_table(zone_table(doc))
    out += _md_table(violations_table(doc))
    out += ["## Method and limits", ""]
    out += [f"- {md_text(x)}" for x in doc["limits"]]
    return "\n".join(out) + "\n"


# ---- HTML ---------------------------------------------------------------------------------------
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#212121}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #cfd8dc}h3{font-size:1.1em}
table{border-collapse:collapse;margin:.5em 0 1.2em;width:100%}
th,td{border:1px solid #cfd8dc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eceff1}td.bad{color:#b71c1c;font-weight:bold}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}
.note{color:#546e7a}figure{margin:0}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'"
BAD = re.compile(r"\b(BROKEN|NO|OUTDATED|cleartext|violation)\b")


def _h(text: str) -> str:
    return escape(text, quote=True)


def _html_table(table: Table, level: str = "h3") -> str:
    parts = [f"<{level}>{_h(table.title)}</{level}>"]
    if table.note:
        parts.append(f'<p class="note">{_h(table.note)}</p>')
    if not table.rows:
        return "".join(parts) + "<p>(none)</p>"
    parts.append("<table><thead><tr>" + "".join(f"<th>{_h(h)}</th>" for h in table.headers)
                 + "</tr></thead><tbody>")
    for row in table.rows:
        cells = (f'<td class="bad">{_h(c)}</td>' if BAD.search(c) and len(c) < 40
                 else f"<td>{_h(c)}</td>" for c in row)
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def render_html(doc: dict[str, Any]) -> str:
    body = [f"<h1>{_h(doc['title'])}</h1><dl>"]
    body += [f"<dt>{_h(k)}</dt><dd>{_h(v)}</dd>" for k, v in _intro(doc)]
    body.append("</dl><h2>1. Encryption in transit</h2><ul>")
    body += [f"<li>{_h(s)}</li>" for s in doc["summary"]["encryption"]]
    body.append("</ul>")
    body += [_html_table(t) for t in encryption_tables(doc)]
    body.append("<h2>2. Compensating controls per medical device</h2>")
    body.append(_html_table(controls_table(doc)))
    body += [_html_table(peers_table(c), "h4") for c in doc["controls"]]
    body.append("<h2>3. Asset register</h2>")
    body.append(_html_table(register_table(doc)))
    body.append("<h2>Zones and violations</h2><figure>")
    body.append(zone_svg(doc["zone_flows"]))
    body.append('<figcaption class="note">Arrows: client zone to server zone, labelled with '
                "connections; red: a violation crossed, orange: clinical data in cleartext, "
                "grey: neither.</figcaption></figure>")
    body.append(_html_table(zone_table(doc)))
    body.append(_html_table(violations_table(doc)))
    body.append("<h2>Method and limits</h2><ul>")
    body += [f"<li>{_h(x)}</li>" for x in doc["limits"]]
    body.append("</ul>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{_h(doc['title'])}</title><style>{CSS}</style></head><body>"
        + "\n".join(body) + "</body></html>\n"
    )
