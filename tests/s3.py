"""A real S3 endpoint for tests: moto's HTTP server in a subprocess.

``S3Server.start()`` runs the ``moto_server`` console script of this virtual environment on a free localhost
port and waits until it answers; ``server.environment()`` is the set of standard AWS variables that point boto3
(``AWS_ENDPOINT_URL``) and anything else reading them at the server with dummy credentials. pyarrow does not
read ``AWS_ENDPOINT_URL``: pass ``endpoint_override=server.endpoint`` to ``pyarrow.fs.S3FileSystem``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.cluster import free_port

REGION = "us-east-1"
STARTUP_TIMEOUT_S = 60.0


class S3Server:
    """A running ``moto_server``.

    Attributes:
        endpoint: ``http://127.0.0.1:<port>``, the endpoint URL for boto3 and pyarrow.
    """

    def __init__(self, process: subprocess.Popen, endpoint: str, log_path: Path):
        self.process = process
        self.endpoint = endpoint
        self.log_path = log_path
        self._client = None

    @classmethod
    def start(cls) -> S3Server:
        """Start ``moto_server`` on a free port and wait until it answers HTTP (up to 60 s)."""
        executable = Path(sys.executable).parent / "moto_server"
        if not executable.exists():
            raise RuntimeError(f"{executable} not found: install the test extra (moto[server])")
        port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="moto_server-", suffix=".log", delete=False)
        process = subprocess.Popen([str(executable), "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        server = cls(process, f"http://127.0.0.1:{port}", Path(log.name))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server._answers():
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"moto_server did not start on port {port}:\n{server.log_path.read_text()}")
            time.sleep(0.2)
        return server

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint, timeout=1).close()
        except urllib.error.HTTPError:
            return True  # any HTTP status means the server is up
        except OSError:
            return False
        return True

    def environment(self) -> dict[str, str]:
        """AWS variables pointing boto3 at this server with moto's dummy credentials."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}

    def client(self):
        """A boto3 S3 client for this server (independent of the process environment), created once."""
        if self._client is None:
            import boto3

            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint, region_name=REGION,
                aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._client

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` if it does not exist yet and return its URI ``s3://name``.

        The server lives for the whole test session: give each test its own bucket name.
        """
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if name not in existing:
            client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def stop(self) -> None:
        """Terminate the server (killing it after 10 s) and remove its log."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_path.unlink(missing_ok=True)
