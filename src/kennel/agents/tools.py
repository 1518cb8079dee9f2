"""The tools of a turn: web search, web fetch and the worker's workspace files.

Each tool's I/O runs in a DBOS step, so a turn recovered after a crash replays what a tool
already did instead of doing it again. Tenant ids come from the turn's deps, never from the
model's arguments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from dbos import DBOS
from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.common_tools.web_fetch import WebFetchLocalTool
from pydantic_ai.tools import ToolDefinition

from kennel.core import runtime
from kennel.core.settings import Settings
from kennel.workspaces import WorkspaceError

__all__ = [
    "BUILT_IN_TOOLS",
    "FileRecorder",
    "TurnDeps",
    "list_files",
    "offer_web_search",
    "offered_built_ins",
    "read_file",
    "web_fetch",
    "web_search",
    "write_file",
]

BUILT_IN_TOOLS = frozenset({"web_search", "web_fetch", "list_files", "read_file", "write_file"})

_MAX_READ_CHARS = 100_000
_MAX_PAGE_CHARS = 50_000
_MAX_RESULTS = 8
_MAX_SNIPPET = 500


# Records a file the turn wrote (path, media type, size) as published by the turn: the tasks
# domain, which runs the turn, gives it; agents know nothing of tasks.
FileRecorder = Callable[[str, str, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TurnDeps:
    """What the tools of one turn may touch."""

    worker_id: str
    turn_id: str
    record_file: FileRecorder
    output_schema: dict[str, Any] | None = None
    # Characters the response being streamed has said so far: a response cut off by the wall
    # time never reports its usage, so its tokens are estimated from these.
    streamed_chars: list[int] = field(default_factory=lambda: [0])


@DBOS.step()
async def _fetch_page(url: str) -> dict[str, Any]:
    settings = runtime.current().settings
    fetch = WebFetchLocalTool(
        max_content_length=_MAX_PAGE_CHARS,
        allow_local_urls=settings.allow_private_fetch,
        timeout=30,
    )
    try:
        page = await fetch(url)
    except ModelRetry as exc:
        return {"error": str(exc)}
    if isinstance(page, dict):
        return dict(page)
    return {"url": url, "title": "", "content": f"(binary content, {page.media_type})"}


async def web_fetch(ctx: RunContext[TurnDeps], url: str) -> dict[str, Any]:
    """Fetch a web page (http or https) and return its title and content as markdown."""
    page = await _fetch_page(url)
    if "error" in page:
        raise ModelRetry(page["error"])
    return page


@DBOS.step()
async def _search(query: str) -> dict[str, Any]:
    """SearXNG's JSON API (`/search?q=...&format=json`): its first results, or why not."""
    base = runtime.current().settings.search_url or ""
    try:
        async with httpx.AsyncClient(timeout=20, follow_redirects=False) as client:
            answer = await client.get(
                base.rstrip("/") + "/search", params={"q": query, "format": "json"}
            )
        answer.raise_for_status()
        found = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"error": f"the search service failed: {' '.join(str(exc).split())[:300]}"}
    results = []
    for item in found.get("results", []) if isinstance(found, dict) else []:
        url = str(item.get("url") or "")
        if not url.startswith(("http://", "https://")):
            continue
        snippet = " ".join(str(item.get("content") or "").split())
        results.append(
            {
                "title": str(item.get("title") or url)[:300],
                "url": url,
                "snippet": snippet[:_MAX_SNIPPET],
            }
        )
        if len(results) == _MAX_RESULTS:
            break
    return {"query": query, "results": results}


async def web_search(ctx: RunContext[TurnDeps], query: str) -> dict[str, Any]:
    """Search the web: the first results' titles, addresses and snippets (read a result's page
    with web_fetch)."""
    found = await _search(query)
    if "error" in found:
        raise ModelRetry(found["error"])
    return found


async def offer_web_search(
    ctx: RunContext[TurnDeps], tool: ToolDefinition
) -> ToolDefinition | None:
    """The search tool is offered only where a search service is set (`KENNEL_SEARCH_URL`)."""
    return tool if tool.name in offered_built_ins(runtime.current().settings) else None


def offered_built_ins(settings: Settings) -> frozenset[str]:
    """The built-in tools a turn is offered under these settings."""
    return BUILT_IN_TOOLS if settings.search_url else BUILT_IN_TOOLS - {"web_search"}


@DBOS.step()
async def _list(worker_id: str) -> list[dict[str, Any]]:
    files = await runtime.current().workspace(worker_id).list()
    return [{"path": f.path, "size": f.size, "mediaType": f.media_type} for f in files]


async def list_files(ctx: RunContext[TurnDeps]) -> list[dict[str, Any]]:
    """List the files in your workspace (path, size in bytes, media type)."""
    return await _list(ctx.deps.worker_id)


@DBOS.step()
async def _read(worker_id: str, path: str) -> dict[str, str]:
    try:
        data = await runtime.current().workspace(worker_id).read(path)
    except FileNotFoundError:
        return {"error": f"there is no file {path!r}"}
    except WorkspaceError as exc:
        return {"error": f"cannot read {path!r}: {exc}"}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"error": f"{path!r} is a binary file of {len(data)} bytes"}
    if len(text) > _MAX_READ_CHARS:
        text = text[:_MAX_READ_CHARS] + f"\n…(truncated, {len(text)} characters in all)"
    return {"content": text}


async def read_file(ctx: RunContext[TurnDeps], path: str) -> str:
    """Read a text file from your workspace."""
    result = await _read(ctx.deps.worker_id, path)
    if "error" in result:
        raise ModelRetry(result["error"])
    return result["content"]


@DBOS.step()
async def _write(
    worker_id: str, record_file: FileRecorder, path: str, content: str
) -> dict[str, Any]:
    rt = runtime.current()
    try:
        # One transaction: the file and the turn's record of it commit together.
        async with rt.db.write():
            written = await rt.workspace(worker_id).write(path, content.encode("utf-8"))
            await record_file(written.path, written.media_type, written.size)
    except (WorkspaceError, UnicodeEncodeError) as exc:
        # A name the workspace refuses, a folder in the way, a file too large: the model hears
        # why and may try another name, as with a page that cannot be fetched.
        return {"error": f"cannot write {path!r}: {exc}"}
    return {"path": written.path, "size": written.size}


async def write_file(ctx: RunContext[TurnDeps], path: str, content: str) -> str:
    """Write a text file into your workspace (replacing it if it exists); it is published."""
    result = await _write(ctx.deps.worker_id, ctx.deps.record_file, path, content)
    if "error" in result:
        raise ModelRetry(result["error"])
    return f"wrote {result['size']} bytes to {result['path']}"
