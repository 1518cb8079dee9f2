"""Plumbing every domain stands on: ids, time, logs, settings, the runtime, DBOS."""
