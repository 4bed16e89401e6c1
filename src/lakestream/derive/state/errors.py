"""Errors of the processor's state store, and database failures translated into them.

The store is the processor's storage (like the lake is ingest's), so its errors
are :class:`~lakestream.errors.StorageError`: the streaming retry policy waits
for a store that is down (:class:`StateStoreUnavailableError`) as it waits for
the lake, and stops on one that refuses the work (:class:`StateStoreRefusedError`).
Every message names the store's URL without its password.
"""

from __future__ import annotations

import sqlalchemy as sa

from lakestream.errors import StorageError, TerminalError, TransientError

# MySQL/MariaDB error codes that mean "try again" (server gone, lost connection, lock wait
# timeout, deadlock, too many connections) and "never" (login, unknown database).
_MYSQL_TRANSIENT = {1040, 1053, 1205, 1213, 1927, 2002, 2003, 2005, 2006, 2013, 2014, 2055,
                    4031}
_MYSQL_REFUSED = {1044, 1045, 1049, 1698}
# PostgreSQL SQLSTATEs: serialization failure, deadlock, too many connections, shutdown
_PG_TRANSIENT = {"40001", "40P01", "53300", "57P01", "57P02", "57P03"}
_PG_REFUSED = {"28P01", "28000", "3D000"}
_URL_HINT = "check state_url (LAKESTREAM_STATE_URL): its user, password and database"


class StateStoreError(StorageError):
    """The processor's state store failed; see the concrete classes."""


class StateStoreUnavailableError(StateStoreError, TransientError):
    """The state store cannot be reached, dropped the connection or was busy: retry."""


class StateStoreRefusedError(StateStoreError, TerminalError):
    """The state store refuses the work (login, a missing database, a state it cannot use)."""


class ProgramChangedError(StateStoreRefusedError):
    """Another processor on the store runs other statements: this one must restart."""


def url_text(url: sa.URL) -> str:
    """The store's URL as it may be shown (no password)."""
    return url.render_as_string(hide_password=True)


def translate(exc: BaseException, url: sa.URL, doing: str) -> StateStoreError:
    """One clear error for a database failure while ``doing`` something with the store."""
    orig: BaseException = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
    code = orig.args[0] if orig.args and isinstance(orig.args[0], int) else None
    state = getattr(orig, "sqlstate", None)
    text = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    where = url_text(url)
    lowered = text.lower()
    if code in _MYSQL_REFUSED or state in _PG_REFUSED or "authentication failed" in lowered \
            or ("database" in lowered and "does not exist" in lowered):
        return StateStoreRefusedError(f"the state store at {where} refused to {doing}: {text}",
                                      _URL_HINT)
    if type(orig).__module__.startswith("sqlite3"):
        # a locked or busy file passes; a file that cannot be opened or is corrupt does not
        transient = "locked" in lowered or "busy" in lowered
    else:
        transient = (code in _MYSQL_TRANSIENT or state in _PG_TRANSIENT
                     or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
                     or (isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated))
    if transient:
        return StateStoreUnavailableError(f"the state store at {where} failed to {doing}: "
                                          f"{text}")
    return StateStoreRefusedError(f"the state store at {where} failed to {doing}: {text}")
