"""A request body sent without a ``Content-Length`` (``Transfer-Encoding: chunked``) is answered 411.

Django reads exactly ``CONTENT_LENGTH`` bytes of a body. gunicorn decodes a chunked body but sets no
length, so Django and DRF would see an empty one: a submission would be answered "type: is required",
and an oversized body would never meet the size limit. "411 Length Required" says what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

MESSAGE = "send the body with a Content-Length header; chunked request bodies are not read"


def require_content_length(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not request.META.get("CONTENT_LENGTH"):
            from jobs.api.errors import is_api_path, json_error  # at first use: it imports DRF's views

            if is_api_path(request):
                return json_error(411, "length_required", MESSAGE)
            return HttpResponse(MESSAGE + "\n", status=411, content_type="text/plain; charset=utf-8")
        return get_response(request)

    return middleware
