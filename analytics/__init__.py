"""Behaviour data: ingest, schema, profiles (SQL), metrics and the synthetic shop."""
