"""Schedules: future and recurring tasks."""
