"""ZipLine's REST API (``/api/v1/``), its OpenAPI schema and docs (``/api/``), and ``/health``."""
