"""Ctrl-C and SIGTERM, told apart from failures: the commands exit 130 / 143 with one line, and
MLflow closes the open runs as KILLED with an ``interrupted`` tag instead of FAILED.

SIGTERM raises :class:`Terminated`, a ``KeyboardInterrupt``, so it leaves the same way as Ctrl-C
(``finally`` blocks and ``except BaseException`` clean-ups run, ``except Exception`` does not
swallow it). While a flow runs, Prefect raises its own ``TerminationSignal`` instead; both count.
"""

from __future__ import annotations

import contextlib
import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived."""


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def raise_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def sigterm_raising():
    """:func:`raise_on_sigterm` while inside, the previous handler afterwards."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def signal_of(err: BaseException) -> signal.Signals | None:
    """SIGINT or SIGTERM when ``err``, or an exception it was raised from or while handling,
    stands for that signal; None for any other error."""
    # Only a process that imported Prefect can hold its TerminationSignal; importing it here would
    # create Prefect's home folder for a data command.
    prefect_exceptions = sys.modules.get("prefect.exceptions")
    terminated = (Terminated, *([prefect_exceptions.TerminationSignal] if prefect_exceptions else []))
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, terminated):
            return signal.SIGTERM
        if isinstance(err, KeyboardInterrupt):
            return signal.SIGINT
        err = err.__cause__ or err.__context__
    return None


def report(err: BaseException, kept: str) -> int | None:
    """For an interruption, print one line (``kept``: what survives and how to go on) and return
    the exit status 128 + signal number; None for any other error."""
    signum = signal_of(err)
    if signum is None:
        return None
    print(f"interrupted by {signum.name}: {kept}", file=sys.stderr)
    return 128 + signum
