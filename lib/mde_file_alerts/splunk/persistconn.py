"""The base class of splunkd's persistent REST handlers, with a stand-in outside Splunk.

Inside Splunk, ``splunk.persistconn.application`` comes with Splunk's own Python; the stand-in
has the same interface so the handler can be imported and driven by tests and type checkers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


class LocalPersistentServerConnectionApplication:
    """The interface splunkd's persistent-connection server (persistconn/appserver.py) drives."""

    def __init__(self) -> None:
        pass

    def handle(self, in_string: str | bytes) -> Any:
        """Answer one request (the JSON request document) with a reply document."""
        raise NotImplementedError

    def handleStream(self, handle: Any, in_string: str | bytes) -> Any:
        raise NotImplementedError("PersistentServerConnectionApplication.handleStream")

    def done(self) -> None:
        """Called after each request has been answered."""


if TYPE_CHECKING:
    PersistentServerConnectionApplication = LocalPersistentServerConnectionApplication
else:
    try:
        from splunk.persistconn.application import PersistentServerConnectionApplication
    except ImportError:
        PersistentServerConnectionApplication = LocalPersistentServerConnectionApplication
