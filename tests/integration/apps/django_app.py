"""A single-file Django project for the framework tests.

``application`` is the WSGI entry point, ``asgi_application`` the ASGI one;
the routes are those described in flask_app.py.  No database, no CSRF
middleware (the views are csrf_exempt anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="swserve-integration-tests-not-a-secret",  # noqa: S106
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
        DATA_UPLOAD_MAX_MEMORY_SIZE=16 * 1024 * 1024,
        DEFAULT_CHARSET="utf-8",
        # Django only logs 500s to the console with DEBUG on: make them visible.
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler"}},
            "loggers": {"django": {"handlers": ["stderr"], "level": "ERROR"}},
        },
    )

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIRequest
from django.core.wsgi import get_wsgi_application
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from fw_common import UNICODE, big_body, data_file, say, stream_chunk


@require_GET
def json_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "framework": "django",
            "message": "hello",
            "unicode": UNICODE,
            "numbers": [1, 2, 3],
            "q": request.GET.get("q"),
        }
    )


@csrf_exempt
@require_POST
def form_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"name": request.POST.get("name"), "lang": request.POST.get("lang")})


@csrf_exempt
@require_POST
def upload_view(request: HttpRequest) -> JsonResponse:
    upload = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for block in upload.chunks():
        digest.update(block)
        size += len(block)
    return JsonResponse(
        {
            "filename": upload.name,
            "size": size,
            "sha256": digest.hexdigest(),
            "note": request.POST.get("note"),
        }
    )


@require_GET
def stream_view(request: HttpRequest) -> StreamingHttpResponse:
    count = int(request.GET.get("n", "10"))
    tag = request.GET.get("tag")

    # Under ASGI Django wants an async iterator (a sync one is consumed
    # whole, with a warning); under WSGI a sync one.
    def generate() -> Iterator[bytes]:
        for i in range(count):
            yield stream_chunk(i)
        if tag:
            say(f"stream finished tag={tag}")

    async def agenerate() -> AsyncIterator[bytes]:
        for i in range(count):
            yield stream_chunk(i)
        if tag:
            say(f"stream finished tag={tag}")

    content = agenerate() if isinstance(request, ASGIRequest) else generate()
    return StreamingHttpResponse(content, content_type="text/plain")


@require_GET
def cookie_view(request: HttpRequest) -> JsonResponse:
    value = request.GET.get("value", "anonymous")
    response = JsonResponse({"set": value})
    response.set_cookie("session", value, httponly=True)
    response.set_cookie("theme", "dark")
    return response


@require_GET
def big_view(request: HttpRequest) -> HttpResponse:
    body = big_body(int(request.GET["size"]), int(request.GET["seed"]))
    return HttpResponse(body, content_type="application/octet-stream")


@require_GET
def download_view(request: HttpRequest) -> FileResponse:
    file_path = data_file(int(request.GET["size"]), int(request.GET["seed"]))
    return FileResponse(
        file_path.open("rb"),
        as_attachment=True,
        filename="data.bin",
        content_type="application/octet-stream",
    )


@require_GET
def whoami_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"session": request.COOKIES.get("session"), "theme": request.COOKIES.get("theme")}
    )


@require_GET
def redirect_view(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect("/json")


urlpatterns = [
    path("json", json_view),
    path("form", form_view),
    path("upload", upload_view),
    path("stream", stream_view),
    path("big", big_view),
    path("download", download_view),
    path("cookie", cookie_view),
    path("whoami", whoami_view),
    path("redirect", redirect_view),
]

application = get_wsgi_application()
asgi_application = get_asgi_application()
