"""Segmentation policy on the sensor: zones, evaluation, violation tracking (docs/policy.md).

The format and its loader are ``collector.policy`` (shared with the collector); this
package decides what a flow is worth: ``engine`` (zone of an endpoint, the verdict on one
flow), ``directory`` (which device owns an address), ``tracker`` (streaming, deduplicated
violations, pending flows) and ``apply`` (``medtap analyze --policy``).
"""

from agent.policy.directory import Directory
from agent.policy.engine import EndpointFacts, Verdict, ZoneResolver, evaluate, service_text
from agent.policy.tracker import FlowEvent, Violation, ViolationTracker

__all__ = [
    "Directory",
    "EndpointFacts",
    "FlowEvent",
    "Verdict",
    "Violation",
    "ViolationTracker",
    "ZoneResolver",
    "evaluate",
    "service_text",
]
