"""The security headers of every dashboard response (pages, redirects, files, errors)."""

from __future__ import annotations

from typing import Any

__all__ = ["SECURITY_HEADERS", "DashboardHeadersMiddleware"]

# No inline script or style anywhere (the templates hold none), nothing from another host, no
# framing. `img-src data:` is not needed: the usage picture is inline SVG markup.
_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": _CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_RAW = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
# The API and its reference keep their own headers: /docs is Swagger UI, which runs inline script.
_NOT_DASHBOARD = ("/api/", "/docs", "/openapi.json", "/healthz", "/readyz")


class DashboardHeadersMiddleware:
    """Add `SECURITY_HEADERS` to every response outside the API."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(_NOT_DASHBOARD):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _RAW if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
