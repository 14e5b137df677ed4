"""probe-site: one of web-prober's targets on the native stack (started by
scripts/lib/native/probe-site.sh): https on 127.0.0.1 with the self-signed certificate given,
so that web-prober's TLS phase, certificate expiry and failure results have something to
measure. Pages: /health ({"status": "ok"}), /version ({"version": "1.4.2"}), / and 404 for
the rest. SIGTERM stops it with exit status 0.

    probe_site.py PORT CERT KEY
"""

import http.server
import signal
import ssl
import sys

PAGES = {
    "/": b"Fleetpulse probe site\n",
    "/health": b'{"status": "ok"}\n',
    "/version": b'{"version": "1.4.2"}\n',
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAGES.get(self.path.split("?")[0])
        self.send_response(200 if body else 404)
        body = body or b"not found\n"
        self.send_header("Content-Type", "application/json" if body.startswith(b"{") else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, context):
        super().__init__(address, Handler)
        self.context = context

    def finish_request(self, request, client_address):
        # The handshake in the request thread: a client that never completes it holds no one.
        tls = self.context.wrap_socket(request, server_side=True)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        pass  # a client gone mid-handshake or mid-request


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Server(("127.0.0.1", port), context)
    print("probe-site: https://localhost:%d (self-signed: %s)" % (port, cert), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
