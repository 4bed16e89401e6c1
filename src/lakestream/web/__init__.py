"""The dashboard, the JSON API and Prometheus ``/metrics`` (``lakestream serve``).

Thin, like the CLI: routes parse the request, call the facade's monitor once
and render. Permissions, the audit log and every number live below.
"""

from lakestream.web.app import app_from_environment, create_app

__all__ = ["app_from_environment", "create_app"]
