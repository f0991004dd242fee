"""The peers of ``benchmarks/bench_peers.py``: data views, the shared training loop, the search
protocol (``search.py``), the classification and clustering peers, DGNN's rows and the report."""
