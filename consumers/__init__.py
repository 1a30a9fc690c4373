import domain  # noqa: F401  first: compiled modules or their sources (domain/_compiled.py)
