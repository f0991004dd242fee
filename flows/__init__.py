"""Prefect flows and tasks around the ``dgnn`` library: thin, they call the library and
:mod:`adapters`. The entry point applies the project's environment defaults before importing them
(``cli.run_setup.apply_defaults``)."""
