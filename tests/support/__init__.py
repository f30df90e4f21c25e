"""Shared test helpers: databases, organizations, servers."""
