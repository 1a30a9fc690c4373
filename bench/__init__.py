"""Benchmarks: speed and memory figures as ratios measured in one run (``make bench``)."""
