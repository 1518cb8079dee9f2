"""Kennel: a self-hosted server for AI agent workers that speaks the Handinger REST API."""

__version__ = "0.1.0"
