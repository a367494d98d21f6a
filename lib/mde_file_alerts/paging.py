"""Pages of Defender's OData collections: the envelope check and which ``@odata.nextLink`` to follow.

The file alerts endpoint answers in one page in practice and does not document paging, so a
``nextLink`` is followed defensively: only to the API host the account trusts with its token
(over https), never to a page already fetched, and never beyond a page cap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from mde_file_alerts.errors import MalformedResponse

logger = logging.getLogger(__name__)

#: A file with more alert pages than this is not a real answer; stop there.
MAX_PAGES = 50
NEXT_LINK = "@odata.nextLink"


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_link: str | None


def read_page(body: Any, *, url: str, status: int | None = None, correlation_id: str | None = None) -> Page:
    """The ``value`` list and ``@odata.nextLink`` of a collection answer; ``MalformedResponse`` otherwise."""
    problem = None
    items = body.get("value") if isinstance(body, dict) else None
    next_link = body.get(NEXT_LINK) if isinstance(body, dict) else None
    if not isinstance(items, list):
        problem = "it has no 'value' list"
    elif not all(isinstance(item, dict) for item in items):
        problem = "its 'value' list holds something other than alert objects"
    elif next_link is not None and not isinstance(next_link, str):
        problem = f"its '{NEXT_LINK}' is not a string"
    if problem is not None:
        raise MalformedResponse.because(problem, url=url, status=status, correlation_id=correlation_id)
    return Page(items=list(items) if isinstance(items, list) else [], next_link=next_link or None)


class PageWalk:
    """Decides, page by page, whether and where to go next."""

    def __init__(self, first_url: str, trusted_base_url: str, *, max_pages: int = MAX_PAGES) -> None:
        self._trusted = _origin(trusted_base_url)
        self._seen = {first_url}
        self._max_pages = max_pages
        self.pages = 1

    def next_url(self, current_url: str, next_link: str | None) -> str | None:
        """The URL of the next page, or None when done; raises for a link to another host."""
        if next_link is None:
            return None
        target = urljoin(current_url, next_link)
        if _origin(target) != self._trusted:
            # Following it would hand the bearer token to whoever that host is.
            raise MalformedResponse(
                f"Defender for Endpoint's next page link points away from {self._trusted[0]}://"
                f"{self._trusted[1]}; it was not followed.",
                method="GET",
                url=current_url,
                detail=f"{NEXT_LINK} host: {urlsplit(target).hostname}",
            )
        if target in self._seen:
            logger.warning(
                "next page link repeats an earlier page; stopping after %d pages: %s", self.pages, target
            )
            return None
        if self.pages >= self._max_pages:
            logger.warning("stopping after %d pages; more were offered: %s", self.pages, target)
            return None
        self._seen.add(target)
        self.pages += 1
        return target


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return "invalid", "", None
    if port is None and scheme == "https":
        port = 443
    return scheme, (parts.hostname or "").lower(), port
