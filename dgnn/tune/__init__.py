"""Choosing a config on validation data: a built-in portfolio of candidates and an Optuna search.

:mod:`dgnn.tune.space` reads the search space, :mod:`dgnn.tune.portfolio` picks the best of a
few fixed candidates per seed (the default for graphs without a config) and :mod:`dgnn.tune.study`
runs the Optuna study, scoring each config on validation data pass by pass (so it can prune) and
keeping its best few as a portfolio. Test labels are never read to choose anything.
"""
