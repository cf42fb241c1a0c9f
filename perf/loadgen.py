#!/usr/bin/env python3
"""Tiny HTTP/1.1 client for the measurements wrk cannot do.

  loadgen.py fixed --port P --requests N [--conns C] [--path /]
      Sends exactly N GET requests over C keep-alive connections (one request
      in flight per connection, no pipelining), then closes them. Used for the
      instruction counts (callgrind) and syscall counts (strace, perf stat),
      where the number of requests has to be exact. Prints one line:
      "requests=N ok=N errors=N seconds=S".

  loadgen.py idle --port P --conns N [--batch B] [--batch-timeout S] [--hold S] [--ready-file F]
      Opens N keep-alive connections, sends one GET on each and reads the
      answer, then keeps them all open and idle. Writes "ready N" to
      --ready-file (and stdout) once all are idle, holds them until --hold
      seconds pass, SIGTERM/SIGINT arrives or stdin closes, then closes them.
      Connections a batch has not finished within --batch-timeout are closed
      and counted as errors. Used for the RSS per idle keep-alive connection.

Answers must carry Content-Length or be chunked (they always do here). Every
step has a deadline: the program never hangs.
"""
import argparse
import errno
import os
import selectors
import signal
import socket
import sys
import time


def request_bytes(host, port, path):
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: ringway-perf\r\n\r\n" % (path, host, port)).encode()


class Conn:
    __slots__ = ("sock", "buf", "sent", "state")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.sent = 0
        self.state = "connecting"


def response_length(buf):
    """Bytes of the complete response at the start of buf, 0 if incomplete, -1 if malformed."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return 0
    head = bytes(buf[:end]).decode("latin-1")
    lines = head.split("\r\n")
    if not lines[0].startswith("HTTP/1."):
        return -1
    status = int(lines[0].split(" ")[1])
    clen = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            clen = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    start = end + 4
    if status in (204, 304) or 100 <= status < 200:
        return start
    if chunked:
        term = buf.find(b"0\r\n\r\n", start)
        return term + 5 if term >= 0 else 0
    if clen is None:
        return -1
    return start + clen if len(buf) >= start + clen else 0


def status_of(buf):
    try:
        return int(bytes(buf[9:12]))
    except ValueError:
        return 0


def open_conn(sel, host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rc = s.connect_ex((host, port))
    if rc not in (0, errno.EINPROGRESS):
        s.close()
        raise OSError(rc, os.strerror(rc))
    c = Conn(s)
    sel.register(s, selectors.EVENT_WRITE, c)
    return c


def fixed(args):
    sel = selectors.DefaultSelector()
    req = request_bytes(args.host, args.port, args.path)
    todo = args.requests
    started = 0
    ok = errors = 0
    deadline = time.monotonic() + args.timeout
    conns = []
    t0 = time.monotonic()
    for _ in range(min(args.conns, todo)):
        conns.append(open_conn(sel, args.host, args.port))
    live = len(conns)

    def send_next(c):
        nonlocal started
        if started >= todo:
            sel.unregister(c.sock)
            c.sock.close()
            c.state = "closed"
            return False
        started += 1
        c.buf.clear()
        c.sock.send(req)  # tiny; always fits the socket buffer
        c.state = "reading"
        sel.modify(c.sock, selectors.EVENT_READ, c)
        return True

    while live > 0:
        if time.monotonic() > deadline:
            print("loadgen: deadline passed with %d of %d answers" % (ok + errors, todo), file=sys.stderr)
            break
        for key, _ in sel.select(timeout=1.0):
            c = key.data
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    errors += 1
                    sel.unregister(c.sock)
                    c.sock.close()
                    live -= 1
                    continue
                if not send_next(c):
                    live -= 1
                continue
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                errors += 1  # closed mid-response
                sel.unregister(c.sock)
                c.sock.close()
                live -= 1
                continue
            c.buf += data
            n = response_length(c.buf)
            if n == 0:
                continue
            if n < 0 or status_of(c.buf) // 100 != 2:
                errors += 1
            else:
                ok += 1
            if not send_next(c):
                live -= 1
    for c in conns:
        if c.state != "closed":
            try:
                sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
    secs = time.monotonic() - t0
    print("requests=%d ok=%d errors=%d seconds=%.3f" % (todo, ok, errors, secs))
    return 0 if ok == todo else 1


def idle(args):
    sel = selectors.DefaultSelector()
    req = request_bytes(args.host, args.port, args.path)
    deadline = time.monotonic() + args.timeout
    held = []
    errors = 0
    remaining = args.conns
    while remaining > 0 and time.monotonic() < deadline:
        batch = []
        for _ in range(min(args.batch, remaining)):
            try:
                batch.append(open_conn(sel, args.host, args.port))
            except OSError as e:
                print("loadgen: connect: %s" % e, file=sys.stderr)
                errors += 1
        remaining -= args.batch
        pending = len(batch)
        bdeadline = min(deadline, time.monotonic() + args.batch_timeout)
        while pending > 0 and time.monotonic() < bdeadline:
            for key, _ in sel.select(timeout=1.0):
                c = key.data
                if c.state == "connecting":
                    if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        errors += 1
                        sel.unregister(c.sock)
                        c.sock.close()
                        c.state = "closed"
                        pending -= 1
                        continue
                    c.sock.send(req)
                    c.state = "reading"
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                c.buf += data
                n = response_length(c.buf) if data else -1
                if n == 0:
                    continue
                sel.unregister(c.sock)
                pending -= 1
                if n < 0 or status_of(c.buf) // 100 != 2:
                    errors += 1
                    c.sock.close()
                    c.state = "closed"
                else:
                    c.state = "idle"
                    c.buf = bytearray()
                    held.append(c)
        for c in batch:  # not answered in time (a server at its connection cap): give up on them
            if c.state in ("connecting", "reading"):
                sel.unregister(c.sock)
                c.sock.close()
                c.state = "closed"
                errors += 1
    msg = "ready %d errors %d" % (len(held), errors)
    print(msg, flush=True)
    if args.ready_file:
        with open(args.ready_file + ".tmp", "w") as f:
            f.write(msg + "\n")
        os.rename(args.ready_file + ".tmp", args.ready_file)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    end = time.monotonic() + args.hold
    stdin_sel = selectors.DefaultSelector()
    try:
        stdin_sel.register(sys.stdin, selectors.EVENT_READ)
    except (ValueError, PermissionError, OSError):
        stdin_sel = None
    while not stop and time.monotonic() < end:
        if stdin_sel is not None:
            if stdin_sel.select(timeout=0.2) and not sys.stdin.buffer.read1(4096):
                break
        else:
            time.sleep(0.2)
    for c in held:
        c.sock.close()
    return 0 if errors == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["fixed", "idle"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hold", type=float, default=60.0)
    p.add_argument("--batch-timeout", type=float, default=10.0, help="idle: seconds a batch may take")
    p.add_argument("--ready-file")
    p.add_argument("--timeout", type=float, default=300.0, help="overall deadline in seconds")
    args = p.parse_args()
    return fixed(args) if args.mode == "fixed" else idle(args)


if __name__ == "__main__":
    sys.exit(main())
