"""One error policy for every ``dgnn`` command: one line on stderr, then exit status 2 for bad
input (arguments, a config, the data: :func:`bad_input_types`), 1 for a run that failed (a full disk
included: :class:`~dgnn.data.errors.NoSpace`), and 130 / 143 when Ctrl-C / SIGTERM stopped it
(:func:`adapters.process.interrupts.report`)."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def bad_input_types() -> tuple[type[BaseException], ...]:
    """What counts as bad input; the data layer's errors are imported when first needed, as its
    package loads torch (`dgnn --help` does not)."""
    from dgnn.data.errors import DataError

    return DataError, ValidationError, ValueError, FileNotFoundError


def one_line(err: BaseException) -> str:
    """The first line of ``err``'s message (a config error: the first field and its problem)."""
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"bad config: {where}: {first['msg']} ({err.error_count()} problem(s))"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def bad_input(problem: BaseException | str) -> int:
    print(f"error: {problem if isinstance(problem, str) else one_line(problem)}", file=sys.stderr)
    return 2


def failed(what: str, err: BaseException) -> int:
    print(f"error: {what} failed: {one_line(err)}", file=sys.stderr)
    return 1


def status_of(what: str, err: BaseException) -> int:
    """2 after :func:`bad_input` for bad input, else 1 after :func:`failed`."""
    from dgnn.data.errors import NoSpace

    if isinstance(err, bad_input_types()) and not isinstance(err, NoSpace):
        return bad_input(err)
    return failed(what, err)


def stopped(what: str, err: BaseException, resume_hint: str) -> int:
    """The status of a command whose run raised ``err``: 130 / 143 for an interruption (saying
    ``resume_hint``), 2 for bad input, else 1 ("``what`` failed")."""
    from adapters.process import interrupts  # here: only a pipeline command gets this far

    status = interrupts.report(err, resume_hint)
    if status is not None:
        return status
    return status_of(what, err)


KEPT = "nothing half-written is left (stage folders are replaced whole); rerun the same command"


def guarded(action, kept: str = KEPT):
    """A handler running ``action(args)``: status 0, or a one-line error and 2 for bad input, 1
    for a full disk, 130 / 143 (saying ``kept``) when Ctrl-C / SIGTERM stopped it."""

    def handler(args: argparse.Namespace) -> int:
        try:
            action(args)
        except bad_input_types() as err:
            return status_of(args.command, err)
        except KeyboardInterrupt as err:
            return stopped(args.command, err, kept)
        return 0

    return handler
