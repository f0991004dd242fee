"""Dask: row blocks as futures on a cluster, and the task runner the flows run on (``cluster``)."""
