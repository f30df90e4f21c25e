"""SMTP transport: connections (direct or through a proxy), TLS, the mapping of library
errors to domain errors, and the step-by-step connection test."""

from visitmail.adapters.smtp.connect import open_connection
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester

__all__ = ["SmtpConnectionTester", "open_connection"]
