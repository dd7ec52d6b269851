"""
A CGI-capable HTTP server for the CGI benchmark: Python's own (http.server),
one new process per request for the scripts in ./cgi-bin/. Subclassed only so
that, run as root (CI), it starts scripts without first switching to the
`nobody` user, who could not read this virtualenv.

    python -m bench.cgi_server PORT    # from the folder holding cgi-bin/
"""

import sys
from http.server import CGIHTTPRequestHandler, ThreadingHTTPServer


class Handler(CGIHTTPRequestHandler):
    have_fork = False  # the subprocess path: same user, same interpreter


if __name__ == "__main__":
    port = int(sys.argv[1])
    with ThreadingHTTPServer(("127.0.0.1", port), Handler) as server:
        server.serve_forever()
