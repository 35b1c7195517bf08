"""Benchmarks behind ``brainmvp bench``: time and memory of our code, printed next to a baseline.

Each measured network runs in a fresh Python process, so that its peak resident memory (CPU) or
peak allocated memory (CUDA) is its own and not the high-water mark of an earlier measurement.
"""
