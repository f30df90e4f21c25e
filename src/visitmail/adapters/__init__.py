"""Implementations of the services' ports: database, crypto, SMTP, rendering."""
