"""DVC: the repository's stages, lock, status and data versions (``repo``), a run's lineage
against the workspace (``lineage``), and ``dgnn import`` into a DVC workspace (``imports``)."""
