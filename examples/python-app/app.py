"""A small HTTP service built from the Python standard library only.

GET /         a JSON greeting with the Python version and platform
GET /healthz  {"status": "ok"}
GET /echo?x=1 the query string, parsed (urllib.parse)

The port comes from $PORT (default 8080); it listens on all addresses, or
on $HOST when that is set (127.0.0.1 when the container shares the host's
network).
"""

import json
import os
import platform
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STARTED = time.time()


class Handler(BaseHTTPRequestHandler):
    server_version = "python-app/1.0"

    def send_json(self, status, body):
        data = (json.dumps(body, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/":
            self.send_json(200, {
                "message": "Hello from a strata image",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "uptime": round(time.time() - STARTED, 3),
            })
        elif url.path == "/healthz":
            self.send_json(200, {"status": "ok"})
        elif url.path == "/echo":
            self.send_json(200, {"query": parse_qs(url.query)})
        else:
            self.send_json(404, {"error": "not found", "path": url.path})

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    port = int(os.environ.get("PORT") or "8080")
    server = ThreadingHTTPServer((os.environ.get("HOST", ""), port), Handler)
    # A container's stop signal ends the service cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening on port %d" % port, flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
