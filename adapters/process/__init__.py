"""The process: the project's settings and environment defaults (``settings``), the stores'
permissions and health (``stores``), signals (``interrupts``), a run that ends with its server
or serve process (``lifeline``) and log levels (``log_levels``)."""
