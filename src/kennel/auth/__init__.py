"""Organizations, users and API keys; the `Caller` every `/api` route depends on."""

from kennel.auth.dependencies import Caller, CallerDep, authenticate

__all__ = ["Caller", "CallerDep", "authenticate"]
