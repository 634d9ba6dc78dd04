"""Runs moto's S3 server on a free loopback port for tidemark's tests.

Usage: moto-server.py PORT_FILE PARENT_PID

Binds 127.0.0.1 on a port the kernel picks (no race for a "free" port),
writes the port to PORT_FILE once the server accepts requests, and serves
until SIGTERM or SIGINT, or until PARENT_PID is gone, so that a test run
that is killed outright does not leave a server behind. Started and stopped
by scripts/s3-server.sh.

Requests are handled one at a time. moto 5.2.5 checks `If-None-Match: *`
and `If-Match` and then writes, with no lock in between, so on its threaded
server two racing creates of one key can both succeed (seen under load: two
winners for one WAL id). S3 decides conditional writes atomically; holding
one lock around each request gives moto the same guarantee. Connections are
still accepted and read concurrently (keep-alive works as usual).
"""

import logging
import os
import signal
import sys
import threading

from werkzeug.serving import make_server

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def serialized(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        with lock:
            # The whole answer is produced under the lock.
            return list(app(environ, start_response))

    return handle


def main() -> int:
    port_file, parent = sys.argv[1], int(sys.argv[2])
    # One log line per request would drown the log a failing run leaves.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = serialized(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    port = server.server_address[1]
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, port_file)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
    server.shutdown()
    serving.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
