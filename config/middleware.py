from django.conf import settings


class SecurityHeadersMiddleware:
    """Content-Security-Policy (no inline scripts anywhere: every page's JavaScript is a
    static file of ours) and Permissions-Policy, on every response."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.headers = {
            "Content-Security-Policy": settings.CONTENT_SECURITY_POLICY,
            "Permissions-Policy": settings.PERMISSIONS_POLICY,
        }

    def __call__(self, request):
        response = self.get_response(request)
        for name, value in self.headers.items():
            if value:
                response.headers.setdefault(name, value)
        return response
