"""The error tree shared by every layer.

The CLI maps these to exit codes in one place (``deployer.cli.app``); nothing else calls ``sys.exit``.
Messages are one line, name the field or file at fault, and say how to fix it.
"""

from __future__ import annotations


class DeployerError(Exception):
    """Base of all errors that deployer reports without a traceback."""

    exit_code = 1


class UserError(DeployerError):
    """Bad input: a spec field, a flag, a file. Exit code 1."""

    exit_code = 1


class SpecError(UserError):
    """A cluster spec failed validation. ``path`` is the dotted field path (``worker_groups[1].max``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)


class NotFoundError(UserError):
    """A named thing (deployment, profile, VM) does not exist."""


class RemoteError(DeployerError):
    """A remote service (IM, Kubernetes, cloud) failed or refused. Exit code 3."""

    exit_code = 3

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class RemoteNotFound(RemoteError):
    """The remote side says the object is gone (HTTP 404). Deletes treat this as success."""


class RemoteConflict(RemoteError):
    """The remote object is in the wrong state or was changed concurrently (HTTP 409)."""


class AuthError(RemoteError):
    """Credentials were missing or refused (HTTP 401/403)."""


class TransientError(RemoteError):
    """A failure worth retrying later: timeouts, connection resets, 5xx."""


class NotDelivered(TransientError):
    """The request never reached the remote side (connection refused, connect timeout): safe to send again."""


class OutcomeUnknown(TransientError):
    """A change was sent and no answer came back: it may or may not have taken effect. Exit code 5, so a
    script can tell "did not happen" (3) from "cannot tell" and run the command the message names."""

    exit_code = 5


class Busy(DeployerError):
    """Another deployer process is changing the same deployment. Exit code 75 (EX_TEMPFAIL): try later."""

    exit_code = 75


class TimeoutExpired(RemoteError):
    """A wait ran past its deadline. Exit code 4 so scripts can tell it from a hard failure."""

    exit_code = 4


def is_not_found(err: BaseException) -> bool:
    return isinstance(err, RemoteNotFound)


def is_transient(err: BaseException) -> bool:
    return isinstance(err, TransientError)
