"""Reusable Prefect tasks: thin calls into the engine, passing ids and small reports only."""
