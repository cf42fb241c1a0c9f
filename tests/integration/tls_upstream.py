#!/usr/bin/env python3
"""A TLS HTTP/1.1 keep-alive upstream for test_tls_upstream.c.

tls_upstream.py PORT CERT KEY [CLIENT_CA]: answers every request with 200
and a text body: the connection's number, the SNI it got, whether the TLS
session was resumed, the peer certificate's subject (when CLIENT_CA asks for
one) and the request's head. GET /stats answers the connection count."""
import http.server
import ssl
import sys
import threading

lock = threading.Lock()
conns = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global conns
        super().setup()
        with lock:
            conns += 1
            self.conn_no = conns

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        if self.path == "/stats":
            with lock:
                body = ("connections=%d\n" % conns).encode()
        else:
            sock = self.connection
            sni = getattr(sock, "rw_sni", None)
            peer = sock.getpeercert()
            lines = [
                "conn=%d" % self.conn_no,
                "sni=%s" % sni,
                "reused=%s" % sock.session_reused,
                "peer=%s" % (peer.get("subject") if peer else None),
                "%s %s %s" % (self.command, self.path, self.request_version),
            ]
            body = ("\n".join(lines) + "\n" + str(self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if len(sys.argv) > 4:
        ctx.load_verify_locations(sys.argv[4])
        ctx.verify_mode = ssl.CERT_REQUIRED

    def on_sni(sock, name, _ctx):
        sock.rw_sni = name

    ctx.sni_callback = on_sni
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready", flush=True)
    srv.serve_forever()


main()
