"""Data problems as one-line errors, found behind the layers of Ray wrappers, and a run that stops on them.

A bad pair (an undecodable image, a parse label out of range, a malformed landmark file) fails the same way
however often it is read, so retrying a training run on it only repeats the failure with pages of traces.
``StopOnDataError`` is a Ray Train callback on the run's controller that turns a worker's data error into the
end of the run, without the retries ``FailureConfig(max_failures)`` grants to worker failures (lost nodes,
preempted workers), which keep them. ``data_error`` digs the one-line message out of whatever Ray wrapped it in
(a task error, a Ray Data user-code error, a Train worker-group or controller error), and ``one_line_errors``
turns a failed ``kgi convert`` or ``kgi train`` into that line.

This module imports no model code: the Train controller loads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from ray.train import UserCallback

from kgi.cli import CommandError
from kgi.data.images import ImageError
from kgi.data.pose import PoseError
from kgi.data.vitonhd import DatasetError


class DataError(ValueError):
    """A deterministic problem with the training data; the message, one line, names the pair, the file and what
    is wrong (or the split and what is missing)."""


DATA_ERRORS = (DataError, DatasetError, ImageError, PoseError)
# How a data error shows in the text of a remote traceback: Ray keeps that text when the exception objects behind
# it (a Ray Data worker's, passed on by the split coordinator to a Train worker, then to the controller) lose
# their causes on the way.
_TRACEBACK_LINE = re.compile(r"^\s*(?:{}): (.+)$".format(
    "|".join(re.escape(f"{cls.__module__}.{cls.__qualname__}") for cls in DATA_ERRORS)), re.MULTILINE)


def data_error(exc: BaseException) -> DataError | None:
    """The data problem behind ``exc`` as a ``DataError`` with a one-line message, or None if there is none.

    Follows exception causes and Ray's wrappers: ``RayTaskError.cause``, a Train ``ControllerError``'s
    ``controller_failure`` and a ``WorkerGroupError``'s ``worker_failures``; failing that, the last data error
    named in a remote traceback's text.
    """
    errors = [exc, *_chain(exc)]
    for error in errors:
        # A RayTaskError(DatasetError) is a DatasetError too, but its str() is a whole traceback: take its cause.
        if isinstance(error, DATA_ERRORS) and not isinstance(getattr(error, "cause", None), BaseException):
            return error if type(error) is DataError else DataError(str(error).strip().splitlines()[-1])
    for error in errors:
        named = _TRACEBACK_LINE.findall(str(error))
        if named:
            return DataError(named[-1].strip())
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``'s causes, contexts and wrapped errors, outermost first."""
    found, pending = [], [exc]
    while pending:
        error = pending.pop(0)
        for inner in (getattr(error, "cause", None), getattr(error, "controller_failure", None),
                      *getattr(error, "worker_failures", {}).values(), error.__cause__, error.__context__):
            if isinstance(inner, BaseException) and all(inner is not f for f in found):
                found.append(inner)
                pending.append(inner)
    return found


class StopOnDataError(UserCallback):
    """Ends the run at the first data error a worker raises, instead of restarting the workers on the same data.

    Raising here, on the controller, makes Ray Train record a controller failure, which it does not retry; the
    driver's ``fit()`` then raises it, and ``data_error`` finds the message.
    """

    def after_exception(self, run_context, worker_exceptions: dict[int, Exception]) -> None:
        for rank in sorted(worker_exceptions):
            found = data_error(worker_exceptions[rank])
            if found is not None:
                raise found


@contextmanager
def one_line_errors(what: str, verbose: bool, data_hint: str = "") -> Iterator[None]:
    """Any failure of the Ray job run inside the block as a one-line ``CommandError`` (``kgi`` prints it without a
    trace): a data problem (:func:`data_error`) as ``data: <its message><data_hint>``, anything else as ``<what>
    failed: <the last line of its message> (--verbose shows the trace)``.

    Args:
        what: the job, as the message names it ("conversion", "training").
        verbose: raise the failure as it is instead (``--verbose``: the whole trace).
        data_hint: said after a data problem's message, e.g. the command that lists every bad pair.
    """
    try:
        yield
    except Exception as exc:
        if verbose:
            raise
        found = data_error(exc)
        if found is not None:
            raise CommandError(f"data: {found}{data_hint}") from None
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise CommandError(f"{what} failed: {lines[-1] if lines else type(exc).__name__} (--verbose shows the "
                           "trace)") from None
