"""NIS2 evidence from traffic (issue 9, docs/nis2.md): one small module per job.

``observed`` (what the report reads, from captures or the collector: ``sources``),
``counting`` (HL7 messages per conversation), ``encryption`` (cleartext vs TLS per
clinical flow), ``software`` (outdated OS / TLS stacks from evidence), ``controls``
(compensating controls per medical device), ``register`` (asset register rows, CSV/JSON),
``netbox`` (NetBox bulk-import records), ``zoneflow`` (zone edges and their SVG),
``document`` (the whole document as JSON), ``tables`` and ``render`` (Markdown, HTML).
"""
