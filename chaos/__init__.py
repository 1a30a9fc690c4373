"""``make chaos``: the service under faults, and a checker that cannot be fooled.

A driver (``chaos.driver``) runs the room authority (two instances and a third that comes
and goes), the relay, the statistics consumer and the clock as separate OS processes
against a real broker (or a three-node cluster), feeds them mixed traffic with kiosk
retries (``chaos.traffic``), SIGKILLs service processes at random moments, restarts the
broker, and kills a broker of the cluster. Then the checker (``chaos.checker``) reads what
landed on the input topics, recomputes what must have been decided with a reference model
written apart from ``domain/`` (``chaos.reference``), and compares it with what landed on
``decisions``, ``usage-monthly``, ``occupancy`` and ``dead-letters``. See docs/chaos.md.
"""
