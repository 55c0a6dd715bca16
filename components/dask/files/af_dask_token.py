"""Dask client preload (`distributed.client.preload`): the workers of every cluster a notebook
connects to read data with the notebook user's token, kept fresh.

The notebook's `$BEARER_TOKEN_FILE` is kept fresh by the hub (af_token.py). When a client
connects, this hands the token to the cluster as a worker plugin; the scheduler keeps the
plugin and gives it to every worker, also those that join later. Each worker writes the token to
a file only its user can read in its local directory and points `BEARER_TOKEN_FILE` there: the
same convention as the notebook, so XRootD, HTCondor and gfal clients on workers find it. While
the client lives, the file is re-read every `AF_DASK_TOKEN_SECONDS` and a changed token is sent
again. The token travels only over Dask's TLS connections: never in a pod spec, a Helm value or a
Kubernetes object. Without a connected client no task runs (a client's tasks are released when
it leaves), so no worker needs a token the notebook no longer refreshes."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

from distributed.diagnostics.plugin import WorkerPlugin
from tornado.ioloop import PeriodicCallback

NAME = "af-bearer-token"
FILE_NAME = "af-bearer-token"
DEFAULT_SECONDS = 60

logger = logging.getLogger("af_dask_token")


def write_private(path: str, text: str) -> None:
    """Replace `path` atomically with a file only the user can read."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bt-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class BearerToken(WorkerPlugin):
    """Writes the token on each worker and points `BEARER_TOKEN_FILE` at it."""

    name = NAME

    def __init__(self, token: str) -> None:
        self.token = token

    def setup(self, worker) -> None:
        path = os.path.join(worker.local_directory, FILE_NAME)
        write_private(path, self.token)
        # XRootD's ztn and HTCondor read the variable when they authenticate.
        os.environ["BEARER_TOKEN_FILE"] = path

    def __repr__(self) -> str:  # never the token, in logs or dashboards
        return "BearerToken(...)"


def read_token() -> str | None:
    """The notebook's current token, or None when the notebook has none."""
    path = os.environ.get("BEARER_TOKEN_FILE")
    if not path:
        return None
    try:
        with open(path) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


class TokenForwarder:
    """Sends the token to the client's cluster when it changes."""

    def __init__(self, client) -> None:
        self.client = client
        self.sent: str | None = None

    async def forward(self) -> None:
        token = read_token()
        if token is None or token == self.sent:
            return
        try:
            await self.client._register_worker_plugin(BearerToken(token), name=NAME, idempotent=False)
        except Exception as exc:  # a refresh that fails is retried at the next period
            logger.warning("af_dask_token: could not hand the token to the workers: %s", exc)
            return
        self.sent = token


# Workers do not have this module: the plugin travels by value.
with contextlib.suppress(ImportError, KeyError, ValueError):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


async def dask_setup(client) -> None:
    forwarder = TokenForwarder(client)
    await forwarder.forward()
    period = float(os.environ.get("AF_DASK_TOKEN_SECONDS", DEFAULT_SECONDS)) * 1000
    callback = PeriodicCallback(forwarder.forward, period)
    # The client stops its periodic callbacks when it closes.
    client._periodic_callbacks[NAME] = callback
    callback.start()
