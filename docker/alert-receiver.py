#!/usr/bin/env python3
"""The stack's alert receiver: takes Alertmanager's webhook POSTs and writes each one as a JSON
line (to stdout, and to ALERTS_FILE when set), so `docker compose logs alert-receiver` shows
what fired and what resolved. Point a real receiver (mail, chat, pager) in alertmanager.yml
at your own service instead. Usage: alert-receiver.py [port, default 9095]"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            line = json.dumps(json.loads(body), separators=(",", ":"))
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        print(line, flush=True)
        if os.environ.get("ALERTS_FILE"):
            with open(os.environ["ALERTS_FILE"], "a") as out:
                out.write(line + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9095
    ThreadingHTTPServer(("0.0.0.0", port), Receiver).serve_forever()
