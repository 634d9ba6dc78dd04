"""Runs moto's S3 server on a free loopback port for tidemark's tests.

Usage: moto-server.py PORT_FILE PARENT_PID

Binds 127.0.0.1 on a port the kernel picks (no race for a "free" port),
writes the port to PORT_FILE once the server accepts requests, and serves
until SIGTERM or SIGINT, or until PARENT_PID is gone, so that a test run
that is killed outright does not leave a server behind. Started and stopped
by scripts/s3-server.sh.
"""

import logging
import os
import signal
import sys
import threading

from moto.server import ThreadedMotoServer


def main() -> int:
    port_file, parent = sys.argv[1], int(sys.argv[2])
    # One log line per request would drown the log a failing run leaves.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
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
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
