"""Webhooks: what may be dialled, signed delivery, retries; `verify` for receivers."""
