"""Sensor -> collector uplink: batching, durable spool, HTTPS client, drain loop.

Spec: GitHub issue 7 (sensor side) and docs/uplink.md. The wire contract is
``collector/schema.py``; everything here sends only fields that contract names, never a
payload, and never logs a batch body.

- ``batch``  report dict -> ``Batch`` documents (split, deterministic ids, heartbeat)
- ``spool``  SQLite FIFO on disk (WAL, synchronous=FULL), size cap, dead letters
- ``client`` httpx POST /api/v1/ingest (gzip, bearer, TLS rules), one batch -> an outcome
- ``drain``  oldest-first delivery with exponential backoff, deadline, drain lock

Import the submodules themselves: this package imports nothing, so a command that only needs
the spool does not pay for httpx and pydantic at start-up.
"""
