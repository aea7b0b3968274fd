from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("leaderboard.urls")),
]
# Per-sample records and demo checkpoints are served by Django itself; behind a real proxy
# set MEDIA_URL to a location the proxy serves instead.


def media(request, path):
    return serve(request, path, document_root=settings.MEDIA_ROOT)  # read per request


urlpatterns += [path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", media)]


@cache_control(max_age=86400, public=True)
def favicon(request):
    # Browsers ask for /favicon.ico whatever a page links: answered from our static files,
    # an image of our own origin (no data: URL to allow in the Content-Security-Policy).
    return serve(request, "leaderboard/favicon.ico", document_root=settings.BASE_DIR / "static")


urlpatterns += [path("favicon.ico", favicon, name="favicon")]

handler400 = "config.errors.bad_request"
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
