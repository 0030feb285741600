"""The segmentation policy of GitHub issue 6, verbatim (used by the policy tests)."""

from __future__ import annotations

ISSUE_POLICY = """\
zones:
  clinical: {vlans: [10], cidrs: [10.10.0.0/16], description: HIS, RIS, workstations}
  medical:  {vlans: [20], cidrs: [10.20.0.0/16], description: monitors, pumps, gateways}
  imaging:  {vlans: [30], cidrs: [10.30.0.0/16]}
  guest:    {vlans: [99], cidrs: [10.99.0.0/16]}
default: deny            # between different zones; traffic inside one zone is allowed unless a rule denies it
rules:
  - name: modalities-to-worklist
    from: {zone: imaging}
    to: {zone: clinical, hosts: [10.10.5.40]}
    services: [tcp/11113]
    action: allow
  - name: reading-rooms-query-pacs
    from: {zone: clinical}
    to: {zone: imaging}
    services: [tcp/104, tcp/11112]
    action: allow
  - name: monitor-gateway-to-engine
    from: {zone: medical, device_type: medical-gateway}
    to: {zone: clinical, hosts: [10.10.5.20]}
    services: [tcp/2575]
    action: allow
  - name: pumps-never-leave-medical
    from: {device_type: infusion-pump}
    to: {zone: "!medical"}
    action: deny
    severity: critical
"""  # noqa: E501 -- verbatim from the issue
