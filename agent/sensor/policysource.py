"""Where the sensor's segmentation policy comes from: a file, or the collector.

docs/sensor.md, "Policy". ``--policy FILE`` is read with ``collector.policy.load_policy``;
without it and with ``--collector``, ``GET /api/v1/policy`` with the sensor's token
(``If-None-Match`` with the last ETag, so an unchanged policy costs a 304). Loaded at start,
on SIGHUP and, from the collector, every ``refresh`` seconds. A policy that fails to load
or validate raises ``PolicySourceError``; the caller keeps the policy it has and logs the
one-line reason (the parser's ``path:line: field: problem``), never the document.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import httpx

from agent.uplink.client import INGEST_PATH, UplinkConfig, ingest_url, tls_context
from collector.policy import Policy, PolicyError, load_policy, parse_policy

log = logging.getLogger(__name__)

POLICY_PATH = "/api/v1/policy"
FETCH_TIMEOUT = 10.0


class PolicySourceError(Exception):
    """The new policy could not be had; the old one stays."""


@dataclass
class Loaded:
    policy: Policy | None  # None: the collector has no policy (404)
    changed: bool
    origin: str


class PolicySource:
    def __init__(self, path: Path | None = None, uplink: UplinkConfig | None = None) -> None:
        self.path = path
        self.uplink = uplink
        self._etag: str | None = None
        self._policy: Policy | None = None

    @property
    def configured(self) -> bool:
        return self.path is not None or self.uplink is not None

    @property
    def from_collector(self) -> bool:
        return self.path is None and self.uplink is not None

    def load(self) -> Loaded:
        if self.path is not None:
            try:
                policy = load_policy(self.path)
            except PolicyError as exc:
                raise PolicySourceError(str(exc)) from None
            changed = policy != self._policy
            self._policy = policy
            return Loaded(policy, changed, str(self.path))
        if self.uplink is not None:
            return self._fetch(self.uplink)
        return Loaded(None, False, "none")

    def _fetch(self, config: UplinkConfig) -> Loaded:
        ingest = ingest_url(config.url, insecure_http=config.insecure_http)
        url = ingest[: -len(INGEST_PATH)] + POLICY_PATH
        headers = {"Authorization": f"Bearer {config.token.strip()}",
                   "User-Agent": "medtap-sensor"}
        if self._etag is not None:
            headers["If-None-Match"] = self._etag
        try:
            with httpx.Client(verify=tls_context(config.ca_file), timeout=FETCH_TIMEOUT,
                              follow_redirects=False, trust_env=False) as client:
                response = client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise PolicySourceError(
                f"cannot fetch the policy from the collector: {type(exc).__name__}"
            ) from None
        origin = "collector"
        if response.status_code == 304:
            return Loaded(self._policy, False, origin)
        if response.status_code == 404:
            changed = self._policy is not None
            self._policy, self._etag = None, None
            return Loaded(None, changed, origin)
        if response.status_code != 200:
            raise PolicySourceError(f"collector answered HTTP {response.status_code} "
                                    "for the policy")
        try:
            doc = response.json()
            text, version = str(doc["text"]), doc.get("version")
        except (ValueError, KeyError, TypeError):
            raise PolicySourceError("collector sent a policy answer without text") from None
        origin = f"collector policy version {version}"
        try:
            policy = parse_policy(text, origin)
        except PolicyError as exc:
            raise PolicySourceError(str(exc)) from None
        self._etag = response.headers.get("etag")
        changed = policy != self._policy
        self._policy = policy
        return Loaded(policy, changed, origin)


__all__ = ["Loaded", "PolicySource", "PolicySourceError"]
