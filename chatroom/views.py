"""
The project's own views, beside the apps': sign-up, and the page a failed
CSRF check gets (CSRF_FAILURE_VIEW).
"""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import csrf

# URL namespace of the JSON APIs: their errors are JSON, never a page.
API_NAMESPACE = "api"


def signup(request: HttpRequest) -> HttpResponse:
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # The password was never checked here, so no backend said who this is.
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        next_url = request.POST.get("next", "")
        if url_has_allowed_host_and_scheme(
            next_url,
            allowed_hosts={request.get_host()},
            require_https=request.is_secure(),
        ):
            return redirect(next_url)
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(
        request,
        "registration/signup.html",
        {"form": form, "next": request.GET.get("next", "")},
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """JSON for a view in an API namespace, Django's page for every other."""
    match = request.resolver_match
    if match is not None and API_NAMESPACE in match.namespaces:
        return JsonResponse(
            {
                "error": {
                    "code": "csrf_failed",
                    "detail": "CSRF verification failed: send the X-CSRFToken "
                    "header from the same origin.",
                }
            },
            status=403,
        )
    return csrf.csrf_failure(request, reason=reason)
