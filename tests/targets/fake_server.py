"""A stand-in for a spawned server (vLLM) in the spawn lifecycle tests.

    python fake_server.py PORT MODE [PIDFILE]

MODE:
  ok        serve GET /v1/models (200) after 0.3 s
  never     serve every GET with 503: never ready
  exit      print a line and exit with code 3 before serving anything
  stubborn  like ok, but ignore SIGTERM, and start a child (same process group) that ignores
            it too; PIDFILE gets "PARENT CHILD"
"""

import http.server
import json
import os
import signal
import subprocess
import sys
import time

port, mode = int(sys.argv[1]), sys.argv[2]
print(f"fake server starting in mode {mode}", flush=True)
if mode == "exit":
    print("boom: the fake server gave up", flush=True)
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    with open(sys.argv[3], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
time.sleep(0.3)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = mode != "never" and self.path == "/v1/models"
        body = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]} if ready
                          else {"error": {"message": "loading"}}).encode()
        self.send_response(200 if ready else 503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
