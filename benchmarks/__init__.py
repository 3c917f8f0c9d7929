"""segsweep's benchmarks: ``python -m benchmarks`` prints a table and writes RESULTS.md.

One module per benchmark: :mod:`benchmarks.throughput` (items 1, 2), :mod:`benchmarks.overhead`
(3), :mod:`benchmarks.search` with its :mod:`benchmarks.search_section` (4),
:mod:`benchmarks.inference` (5), :mod:`benchmarks.gpu` (6).
"""
