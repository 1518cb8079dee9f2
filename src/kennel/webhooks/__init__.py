"""Webhooks: what may be dialled, signed delivery, retries; `verify` for receivers."""

from kennel.webhooks.signing import WebhookVerificationError, verify

__all__ = ["WebhookVerificationError", "verify"]
