"""OAuth2 token endpoints over HTTP."""
