"""
Container health check: exit 0 when the URL answers 200, 1 otherwise.

Used by docker compose for the app services (python is in every app image;
curl is not). /readyz answers before host checks and HTTPS redirects.
"""

import sys
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/readyz"
try:
    with urllib.request.urlopen(url, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:  # any failure at all means unhealthy
    print(f"{url}: {error}", file=sys.stderr)
    sys.exit(1)
