"""A tiny HTTP service for the fpctl demo stack (Python standard library only).

    python3 demo/service.py NAME --port PORT [--needs URL ...] [--boot SECONDS]
                            [--host ADDR]

It listens on 127.0.0.1, or on --host / $HOST (the demo's image sets
HOST=0.0.0.0, so that other containers reach it).

It refuses to start unless every URL given with --needs answers 200, so the
demo shows that fpctl really starts dependencies first. /health answers
{"status": "healthy", ...}; / answers a short JSON description.
"""

import argparse
import json
import os
import signal
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--needs", action="append", default=[])
    parser.add_argument("--boot", type=float, default=0.0)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    args = parser.parse_args()

    for url in args.needs:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status != 200:
                    sys.exit(f"{args.name}: dependency {url} answered {r.status}")
        except OSError as e:
            sys.exit(f"{args.name}: dependency {url} is not up: {e}")
    time.sleep(args.boot)
    started = time.time()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                body = {"status": "healthy", "service": args.name}
            else:
                body = {"service": args.name, "uptime_s": round(time.time() - started, 1)}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *a) -> None:
            print(f"{args.name}: {self.address_string()} {fmt % a}", flush=True)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{args.name}: listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
