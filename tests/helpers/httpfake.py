"""A local HTTP server on 127.0.0.1 serving good, corrupt, truncated, slow, dripping,
unannounced-length and missing files."""
import contextlib
import http.server
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.hits.append(self.path)
        route = self.routes.get(self.path)
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        kind, body = route
        self.send_response(200)
        declared = len(body) * 2 if kind == "truncated" else len(body)
        if kind != "nolength":
            self.send_header("Content-Length", str(declared))
        self.end_headers()
        if kind == "slow":
            time.sleep(1.5)
        try:
            if kind == "drip":  # a byte every 50 ms: never idle long enough for a timeout
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextlib.contextmanager
def serve(routes: dict):
    """routes: path -> (kind, bytes), kind in good|corrupt|truncated|slow|drip|nolength
    (nolength: no Content-Length header)."""
    handler = type("H", (_Handler,), {"routes": routes, "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    finally:
        server.shutdown()
        server.server_close()
