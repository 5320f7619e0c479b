"""JSON views.  They are plain functions, so they run under WSGI and ASGI alike."""

from __future__ import annotations

import json
import os
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

# Read-only: every worker process has its own copy.
BOOKS: dict[int, dict[str, Any]] = {
    1: {"id": 1, "title": "Two Scoops of Django", "year": 2020},
    2: {"id": 2, "title": "The Definitive Guide to Django", "year": 2009},
}


@require_GET
def index(request: HttpRequest) -> JsonResponse:
    """Which process answered, and over which interface (WSGI or ASGI)."""
    # a WSGI request's META is the WSGI environ itself; an ASGI one has no wsgi.* keys
    interface = "wsgi" if "wsgi.version" in request.META else "asgi"
    return JsonResponse({"service": "django-example", "pid": os.getpid(), "interface": interface})


@require_GET
def book(request: HttpRequest, book_id: int) -> JsonResponse:
    found = BOOKS.get(book_id)
    if found is None:
        return JsonResponse({"error": f"no book {book_id}"}, status=404)
    return JsonResponse(found)


@csrf_exempt  # an API endpoint: no browser session, so no CSRF cookie to check
@require_POST
def echo(request: HttpRequest) -> JsonResponse:
    try:
        payload = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "send a JSON body"}, status=400)
    return JsonResponse(
        {"received": payload, "client": request.META.get("REMOTE_ADDR")}, status=201
    )
