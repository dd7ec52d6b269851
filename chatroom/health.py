"""
Health endpoints for load balancers and container health checks.

They answer before host validation, HTTPS redirects and sessions, because the
probes come from inside the deployment (curl http://localhost:8000/readyz) and
must not be redirected or refused for their Host header.
"""

import logging

from asgiref.sync import async_to_sync
from django.db import connection
from django.http import JsonResponse

from chat import events

logger = logging.getLogger(__name__)

CHANNEL_LAYER_TIMEOUT = 2.0


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_channel_layer() -> None:
    async_to_sync(events.layer_round_trip)(timeout=CHANNEL_LAYER_TIMEOUT)


READINESS_CHECKS = {
    "database": _check_database,
    "channel_layer": _check_channel_layer,
}


def readiness() -> tuple[bool, dict[str, str]]:
    """Run every readiness check; return whether all passed and each outcome."""
    results = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
        except Exception as exc:  # any failure means "not ready", never a 500
            logger.warning("readiness check %s failed: %r", name, exc)
            results[name] = f"error: {type(exc).__name__}"
        else:
            results[name] = "ok"
    return all(value == "ok" for value in results.values()), results


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            ready, checks = readiness()
            return JsonResponse(
                {"status": "ok" if ready else "unavailable", "checks": checks},
                status=200 if ready else 503,
            )
        return self.get_response(request)
