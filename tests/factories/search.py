"""A search service on 127.0.0.1 answering as SearXNG's JSON API does (`/search?format=json`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tests.factories.local_http import QuietHandler, serve_handler

__all__ = ["SearchServer", "serve_search"]


@dataclass
class SearchServer:
    url: str = ""
    queries: list[str] = field(default_factory=list)


def results_for(query: str) -> list[dict[str, object]]:
    """SearXNG's result objects (with the fields it documents), two a query."""
    slug = "-".join(query.lower().split())[:40]
    return [
        {
            "title": f"{query} - Kennel Gazette",
            "url": f"https://gazette.example/{slug}",
            "content": f"Everything about {query}.",
            "engine": "duckduckgo",
            "score": 1.0,
        },
        {
            "title": f"{query} at the Dog Times",
            "url": f"https://dogtimes.example/{slug}",
            "content": f"More on {query}.",
            "engine": "bing",
            "score": 0.5,
        },
        {"title": "not a page", "url": "javascript:alert(1)", "content": "dropped"},
    ]


@contextlib.contextmanager
def serve_search() -> Iterator[SearchServer]:
    served = SearchServer()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = parse_qs(parts.query)
            if parts.path != "/search" or params.get("format") != ["json"]:
                self.send_error(403)  # SearXNG refuses formats it was not told to serve
                return
            query = params.get("q", [""])[0]
            served.queries.append(query)
            body = json.dumps({"query": query, "results": results_for(query)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as base_url:
        served.url = base_url
        yield served
