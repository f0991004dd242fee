"""The one exception the data layer raises for bad, missing or unverifiable input."""


class DataError(Exception):
    """A user-readable data problem: what is wrong, where (file, column, rows) and what to do next."""


class NoSpace(DataError):
    """The data folder's disk cannot hold what a stage would write: the machine, not the input."""
