"""A local moto server that includes moto_ext's operations (``moto_server`` alone lacks them).

    python -m tests.support.moto_server --port 5000

then point boto3 at it with ``AWS_ENDPOINT_URL=http://localhost:5000`` (localhost, not 127.0.0.1:
S3 would take the address for a bucket name).
"""

from __future__ import annotations

import argparse
import threading

from moto.server import ThreadedMotoServer

from rehearsal import moto_ext


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    moto_ext.install()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"moto {moto_ext.MOTO_VERSION} with moto_ext on http://localhost:{port} (bound to {host}); Ctrl-C stops")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
