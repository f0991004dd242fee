"""Benchmarks: DGNN against the models users would pick instead (see ``benchmarks/README.md``)."""
