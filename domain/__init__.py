"""The rules: plain Python, free of Kafka and SQL (compiled with mypyc where built, see
``domain/_compiled.py``)."""

from domain._compiled import choose

COMPILED = choose()
"""Whether the compiled modules of ``infra/native.py`` run, rather than the sources."""
