"""DKIM key material and signing (dkimpy, cryptography)."""
