"""MLflow: the stores' clients and run records (``tracking``), a pipeline run's record
(``pipeline_record``) and a module step's child run (``step_runs``), a tune's trials
(``tune_tracking``), run names and descriptions (``run_info``), plots, the packaged model
(``model``, ``packaged_model``, ``logged_model``) and the registry (``registry``)."""
