"""The Prefect API: servers (``server``), links and artifacts of a flow run (``links``), the data
tasks' cached results (``json_results``), runs of killed commands (``leftovers``), ``dgnn serve``'s
runner (``serving``) and the module steps' progress lines (``step_progress``)."""
