"""
An HTTP client for tests against real server processes: keeps cookies and
submits forms with their CSRF token, as the pages do.
"""

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings

PASSWORD = "a-long-test-password-42"


class Browser:
    """A cookie-keeping HTTP client that does what the page's forms do."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.cookies if c.name == name)

    def request(self, path, data=None, *, json_body=None, method=None):
        headers = {}
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers = {
                "Content-Type": "application/json",
                "X-CSRFToken": self.cookie("csrftoken"),
            }
        elif data is not None:
            data = urllib.parse.urlencode(data, doseq=True).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def submit_form(
        self, path: str, fields: dict, *, form_page: str | None = None
    ) -> tuple[int, str]:
        """POST `fields` to `path` as the form on `form_page` (or `path`) does."""
        _status, page = self.request(form_page or path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        return self.request(path, {"csrfmiddlewaretoken": token, **fields})


def sign_up(base_url: str, username: str) -> Browser:
    browser = Browser(base_url)
    status, _ = browser.submit_form(
        "/accounts/signup/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
    )
    assert status == 200  # followed the redirect to the lobby
    assert browser.cookie(settings.SESSION_COOKIE_NAME)
    return browser
