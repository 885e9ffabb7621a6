"""Where finished export files live: a local folder (the embedded default) or an S3-compatible
object store that every host reads (``EXPORT_STORAGE_URL=s3://bucket/prefix``).

A worker builds each file on its own disk (``EXPORT_DIR``, scratch space under a name unique to
the attempt) and then *publishes* it under the export's name. Publishing is create-if-absent and
atomic: the object appears whole or not at all, and once an export's object exists it never
changes. Of two attempts of one export running at once (a worker whose lease ran out but which was
only stalled, beside the attempt that replaced it), the first to publish wins; the other finds the
name taken, keeps nothing of its own and records what the winner published. So the export row,
the object and the job's result always describe the same bytes.

- :class:`LocalStorage`: ``os.link`` of the finished scratch file to the final name (fails if the
  name exists; scratch and store share one folder, hence one file system).
- :class:`S3Storage`: one ``PutObject`` with ``If-None-Match: *`` (S3 and S3-compatible stores
  answer 412 when the key exists), the SHA-256 kept as object metadata. A single PUT takes up to
  5 GB, more than an export reaches. Downloads are streamed from the store with a ``Range``
  request, so byte ranges keep working from any host.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from services.kernel.errors import TransientError

SHA256_METADATA = "sha256"


class ObjectMissing(LookupError):
    """The store has no object of that name (expired and deleted, or never published)."""


class StoreUnavailable(TransientError):
    """The store did not answer (network, timeout, a 5xx): a worker retries; the web answers 503."""


@dataclass(frozen=True)
class StoredObject:
    name: str
    size: int
    modified: datetime
    sha256: str | None = None


class ExportStorage(Protocol):
    """What the export use cases need of a store. Names are plain file names (``exp_….csv``)."""

    def publish(self, source: Path, name: str, *, sha256: str, content_type: str) -> bool:
        """Store ``source`` as ``name`` unless the name is taken; True when this call stored it."""
        ...

    def exists(self, name: str) -> bool: ...

    def describe(self, name: str) -> StoredObject | None:
        """Size, time and SHA-256 of the object, or None."""
        ...

    def open(self, name: str, first: int = 0, last: int | None = None) -> BinaryIO:
        """A readable stream of bytes ``first..last`` (inclusive; ``None``: to the end)."""
        ...

    def delete(self, name: str) -> bool:
        """Remove the object; False when there was none (a remote store may always say True)."""
        ...

    def listing(self) -> Iterator[StoredObject]: ...

    def describe_location(self) -> str: ...


def held_by_a_live_attempt(path: Path) -> bool:
    """Whether an export attempt still running holds the ``flock`` on its scratch file ``path``
    (a lock dies with its process, so an unlocked leftover belongs to a dead attempt)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the lock we may have taken
    return False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class _Slice:
    """At most ``length`` bytes of ``file`` from where it stands."""

    def __init__(self, file: BinaryIO, length: int) -> None:
        self._file, self._remaining = file, length

    def read(self, size: int | None = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        size = self._remaining if size is None or size < 0 else min(size, self._remaining)
        data = self._file.read(size)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


class LocalStorage:
    """Files in one folder of this host (only that host's web process can serve them)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, name: str) -> Path:
        directory = self.directory.resolve()
        path = (directory / name).resolve()
        if path.parent != directory:
            raise ObjectMissing(name)  # never a path outside the folder
        return path

    def publish(self, source: Path, name: str, *, sha256: str, content_type: str) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, self._path(name))  # atomic, and refuses an existing name
        except FileExistsError:
            return False
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)  # the new name survives a crash of the host
        finally:
            os.close(fd)
        return True

    def exists(self, name: str) -> bool:
        try:
            return self._path(name).is_file()
        except ObjectMissing:
            return False

    def describe(self, name: str) -> StoredObject | None:
        try:
            path = self._path(name)
            stat = path.stat()
        except (ObjectMissing, FileNotFoundError):
            return None
        if not path.is_file():
            return None
        return StoredObject(name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC), file_sha256(path))

    def open(self, name: str, first: int = 0, last: int | None = None) -> BinaryIO:
        path = self._path(name)
        if not path.is_file():
            raise ObjectMissing(name)
        file = path.open("rb")
        file.seek(first)
        return file if last is None else _Slice(file, last - first + 1)  # type: ignore[return-value]

    def delete(self, name: str) -> bool:
        try:
            path = self._path(name)
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            return True
        except (ObjectMissing, FileNotFoundError):
            return False

    def listing(self) -> Iterator[StoredObject]:
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            yield StoredObject(path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def describe_location(self) -> str:
        return str(self.directory)


def _unavailable(exc: Exception) -> bool:
    """A network failure or a 5xx from the store (anything else is a real answer)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    return isinstance(exc, BotoCoreError)


class S3Storage:
    """Objects under ``prefix`` in an S3 bucket (AWS, MinIO, Ceph, moto…), shared by every host.

    A store that does not answer raises :class:`StoreUnavailable` (botocore has already retried)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _key(self, name: str) -> str:
        if "/" in name or name in ("", ".", ".."):
            raise ObjectMissing(name)
        return self.prefix + name

    @staticmethod
    def _code(exc: Exception) -> tuple[str, int]:
        response = getattr(exc, "response", None) or {}
        error = response.get("Error", {})
        return str(error.get("Code", "")), int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))

    def publish(self, source: Path, name: str, *, sha256: str, content_type: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(5):
            try:
                with source.open("rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=self._key(name),
                        Body=body,
                        ContentType=content_type,
                        Metadata={SHA256_METADATA: sha256},
                        IfNoneMatch="*",
                    )
                return True
            except ClientError as exc:
                code, status = self._code(exc)
                if status == 412 or code == "PreconditionFailed":
                    return False  # another attempt published first
                if status == 409 and attempt < 4:  # a concurrent conditional write in progress
                    time.sleep(0.2 * (attempt + 1))
                    continue
                if _unavailable(exc):
                    raise StoreUnavailable(f"export store: {exc}") from exc
                raise
            except BotoCoreError as exc:
                raise StoreUnavailable(f"export store: {exc}") from exc
        return False

    def exists(self, name: str) -> bool:
        return self.describe(name) is not None

    def describe(self, name: str) -> StoredObject | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ObjectMissing:
            return None
        except ClientError as exc:
            if self._code(exc)[1] == 404:
                return None
            if _unavailable(exc):
                raise StoreUnavailable(f"export store: {exc}") from exc
            raise
        except BotoCoreError as exc:
            raise StoreUnavailable(f"export store: {exc}") from exc
        return StoredObject(
            name, int(head["ContentLength"]), head["LastModified"], head.get("Metadata", {}).get(SHA256_METADATA)
        )

    def open(self, name: str, first: int = 0, last: int | None = None) -> BinaryIO:
        from botocore.exceptions import BotoCoreError, ClientError

        wanted = {} if first == 0 and last is None else {"Range": f"bytes={first}-{'' if last is None else last}"}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name), **wanted)["Body"]
        except ClientError as exc:
            code, status = self._code(exc)
            if status == 404 or code in ("NoSuchKey", "NotFound"):
                raise ObjectMissing(name) from None
            if _unavailable(exc):
                raise StoreUnavailable(f"export store: {exc}") from exc
            raise
        except BotoCoreError as exc:
            raise StoreUnavailable(f"export store: {exc}") from exc

    def delete(self, name: str) -> bool:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
            return True
        except ObjectMissing:
            return False

    def listing(self) -> Iterator[StoredObject]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                if name and "/" not in name:
                    yield StoredObject(name, int(item["Size"]), item["LastModified"])

    def describe_location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


# One S3 client per process and configuration: building one costs tens of milliseconds, and a
# client must not cross a fork (its connection pool would be shared with the parent).
_clients: dict[tuple[Any, ...], Any] = {}


def _s3_client(endpoint_url: str | None, region: str | None, key_id: str | None, secret: str | None) -> Any:
    cache_key = (os.getpid(), endpoint_url, region, key_id, secret)
    client = _clients.get(cache_key)
    if client is None:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 5, "mode": "standard"},
            # Path-style addressing for S3-compatible servers (MinIO, moto) named by an endpoint.
            s3={"addressing_style": "path"} if endpoint_url else {},
        )
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=config,
        )
        _clients[cache_key] = client
    return client


def storage_from_settings(settings: Any) -> ExportStorage:
    """The store ``EXPORT_STORAGE_URL`` names (``s3://bucket/prefix``), else ``EXPORT_DIR``.

    S3 credentials come from ``EXPORT_S3_ACCESS_KEY_ID``/``EXPORT_S3_SECRET_ACCESS_KEY`` when set,
    else from boto3's usual chain (``AWS_*`` variables, an instance or pod role).
    """
    url = settings.export_storage_url or ""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        client = _s3_client(
            settings.export_s3_endpoint_url,
            settings.export_s3_region,
            settings.export_s3_access_key_id,
            settings.export_s3_secret_access_key,
        )
        return S3Storage(client, bucket, prefix)
    if url.startswith("file://"):
        return LocalStorage(Path(url[len("file://") :]))
    return LocalStorage(Path(settings.export_dir))
