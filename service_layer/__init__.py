"""The service layer: between the Kafka loop (``consumers.batch``) and the domain rules.

``processing.process_batch`` is the one skeleton every consumer's batch goes through:
read, skip what was already decided, decide, dead-letter what cannot be decided, save.
"""

import domain  # noqa: F401  first: compiled modules or their sources (domain/_compiled.py)
