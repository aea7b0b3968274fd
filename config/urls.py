from django.conf import settings
from django.contrib import admin
from django.urls import include, path
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

handler400 = "config.errors.bad_request"
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
