"""An S3-compatible server on a local port: moto's threaded server, speaking S3's real wire format
(SigV4-signed HTTP, XML answers, conditional writes), so boto3 and the service's S3 store run
unchanged against it. The only fake is the server itself, at the outer edge."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
KEY_ID, SECRET = "testing-key-id", "testing-secret-key"


@dataclass
class S3StandIn:
    server: ThreadedMotoServer
    endpoint_url: str

    @classmethod
    def start(cls) -> S3StandIn:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return cls(server, f"http://{host}:{port}")

    def client(self):  # noqa: ANN201 (a boto3 client)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )

    def new_bucket(self) -> str:
        bucket = f"orders-exports-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def settings_changes(self, bucket: str, prefix: str = "exports") -> dict[str, str]:
        """What a Settings needs to use this server as its export store."""
        return {
            "export_storage_url": f"s3://{bucket}/{prefix}",
            "export_s3_endpoint_url": self.endpoint_url,
            "export_s3_region": REGION,
            "export_s3_access_key_id": KEY_ID,
            "export_s3_secret_access_key": SECRET,
        }

    def stop(self) -> None:
        self.server.stop()
