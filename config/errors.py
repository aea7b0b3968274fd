"""Error pages: the one JSON error shape for JSON endpoints, plain pages elsewhere."""

from django.http import JsonResponse
from django.shortcuts import render


def wants_json(request) -> bool:
    return request.path.endswith(".json") or request.path.startswith("/api/")


def _error(request, status: int, message: str):
    if wants_json(request):
        return JsonResponse({"error": message}, status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def bad_request(request, exception=None):
    return _error(request, 400, "bad request: the query or body could not be read")


def not_found(request, exception=None):
    return _error(request, 404, "not found")


def server_error(request):
    return _error(request, 500, "internal error; it has been logged")


class RejectNulMiddleware:
    """A NUL byte has no business in a query string, and PostgreSQL refuses it in text:
    answer 400 here rather than a database error later."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "%00" in query or "\x00" in query:
            return _error(request, 400, "the query string contains a NUL character")
        return self.get_response(request)
