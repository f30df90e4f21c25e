"""Server-rendered pages (Jinja2), session cookie login, CSRF on every form."""
