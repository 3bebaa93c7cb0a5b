"""One module per noun; each has ``api`` (JSON under /api, in the OpenAPI schema) and ``pages``."""
