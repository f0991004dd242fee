"""The Prefect API: servers (``server``), links and artifacts of a flow run (``links``), the data
tasks' cached results (``json_results``), runs of killed commands (``leftovers``) and ``dgnn serve``'s
runner (``serving``)."""
