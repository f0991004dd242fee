"""Choosing a config on validation data: a built-in portfolio of candidates and an Optuna search.

:mod:`dgnn.tune.space` reads the search space, :mod:`dgnn.tune.objective` scores one config on
validation data (pass by pass, so a search can prune), :mod:`dgnn.tune.portfolio` picks the best
of a few fixed candidates (the default for graphs without a config) and :mod:`dgnn.tune.study`
runs the Optuna study. Test labels are never read to choose anything.
"""
