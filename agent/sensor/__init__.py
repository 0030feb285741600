"""The live sensor appliance (``medtap sensor``, docs/sensor.md): mirror-port capture in
worker processes, merged snapshots as deltas, policy, spool and uplink.

- ``ring``        TPACKET_V3 capture ring with PACKET_FANOUT (one per worker)
- ``workers``     capture processes, each with its own ``Analyzer``; the pipe protocol
- ``export``      what a worker hands over (deltas, endpoint table, open flows, counters)
- ``merge``       the workers' exports as one state; devices classified once
- ``snapshot``    running totals -> deltas (``Ledger``), batch ids per run and snapshot
- ``limits``      the sensor's memory caps (flows, bindings, conversations, evidence)
- ``policysource`` the policy from a file or the collector; reload
- ``privileges``  drop to a user or shed capabilities, verified
- ``alerts``, ``metrics``, ``logs``  alert thread, Prometheus text, JSON logs
- ``runner``      the sensor process: start-up order, main loop, signals, flush
"""
