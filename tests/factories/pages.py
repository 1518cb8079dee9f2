"""A real HTTP server on 127.0.0.1 serving one page, for the web fetch tool to read."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.factories.local_http import QuietHandler, serve_handler

__all__ = ["PAGE_TITLE", "PageServer", "page_html", "serve_page"]

PAGE_TITLE = "Kennel Fetch Fixture"


def page_html(title: str = PAGE_TITLE) -> str:
    return (
        f"<html><head><title>{title}</title></head>"
        "<body><h1>Dogs</h1><p>Beagles are patient.</p></body></html>"
    )


@dataclass
class PageServer:
    """A page served on 127.0.0.1, and the paths it was asked for (its hits)."""

    url: str = ""
    requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def serve_page(html: str | None = None) -> Iterator[PageServer]:
    """Serve `html` at /page.html on a free port of 127.0.0.1, from a thread."""
    served = PageServer()
    body = (html or page_html()).encode()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as base_url:
        served.url = f"{base_url}/page.html"
        yield served
