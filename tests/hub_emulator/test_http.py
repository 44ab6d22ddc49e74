"""Wire-level behaviour the client depends on but cannot easily show: Host-derived URLs, keep-alive after a rejected
body, chunked uploads, one-time LFS tickets, byte ranges and error headers."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import pytest
from huggingface_hub import CommitOperationAdd, HfApi


class HubFixture(Protocol):
    """What the session fixture ``local_hub`` (tests/conftest.py) provides."""

    endpoint: str
    token: str
    root: Path


@pytest.fixture()
def conn(local_hub: HubFixture) -> Iterator[http.client.HTTPConnection]:
    parts = urlsplit(local_hub.endpoint)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    yield connection
    connection.close()


def _call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_urls_are_built_from_the_host_header(local_hub: HubFixture, conn: http.client.HTTPConnection) -> None:
    auth = {"Authorization": f"Bearer {local_hub.token}", "Host": "hub:8080"}
    status, _, body = _call(conn, "POST", "/api/repos/create", json.dumps({"name": "hosted"}).encode(), auth)
    assert status == 200 and json.loads(body)["url"] == "http://hub:8080/local/hosted"
    status, _, body = _call(conn, "POST", "/api/repos/create", json.dumps({"name": "hosted"}).encode(), auth)
    assert status == 409 and json.loads(body)["url"] == "http://hub:8080/local/hosted"

    ndjson = b'{"key":"header","value":{"summary":"s","description":""}}\n'
    status, _, body = _call(
        conn, "POST", "/api/models/local/hosted/commit/main", ndjson, {**auth, "Content-Type": "application/x-ndjson"}
    )
    assert status == 200 and json.loads(body)["commitUrl"].startswith("http://hub:8080/local/hosted/commit/")


def test_rejected_bodies_are_drained_so_keep_alive_survives(conn: http.client.HTTPConnection) -> None:
    payload = json.dumps({"files": [{"path": "x", "sample": "", "size": 1}] * 2000}).encode()
    bad = {"Authorization": "Bearer hf_wrong", "Content-Type": "application/json"}
    status, headers, _ = _call(conn, "POST", "/api/models/local/whatever/preupload/main", payload, bad)
    assert status == 401
    assert headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    status, _, body = _call(conn, "GET", "/api/agent-harnesses")  # same connection
    assert status == 200 and json.loads(body) == {"standardEnvVars": [], "harnesses": {}}


def test_chunked_lfs_upload_one_time_ticket_and_ranges(local_hub: HubFixture, conn: http.client.HTTPConnection) -> None:
    api = HfApi(token=local_hub.token)
    repo_id = api.create_repo("raw-lfs", exist_ok=True).repo_id
    data = os.urandom(300_000)
    oid = hashlib.sha256(data).hexdigest()
    auth = {"Authorization": f"Bearer {local_hub.token}"}
    lfs_headers = {**auth, "Content-Type": "application/vnd.git-lfs+json", "Accept": "application/vnd.git-lfs+json"}
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]}

    batch_path = f"/{repo_id}.git/info/lfs/objects/batch"
    status, _, body = _call(conn, "POST", batch_path, json.dumps(batch).encode(), lfs_headers)
    assert status == 200
    actions = json.loads(body)["objects"][0]["actions"]
    assert actions["upload"]["header"] == {}  # no chunk_size: that would switch the client to multipart
    upload = urlsplit(actions["upload"]["href"])

    pieces = (data[i : i + 65536] for i in range(0, len(data), 65536))
    conn.request("PUT", f"{upload.path}?{upload.query}", body=pieces, encode_chunked=True)
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    status, _, _ = _call(conn, "PUT", f"{upload.path}?{upload.query}", data)
    assert status == 403  # the ticket was spent
    verify = json.dumps({"oid": oid, "size": len(data)}).encode()
    status, _, _ = _call(conn, "POST", urlsplit(actions["verify"]["href"]).path, verify, auth)
    assert status == 200
    status, _, body = _call(conn, "POST", batch_path, json.dumps(batch).encode(), lfs_headers)
    assert "actions" not in json.loads(body)["objects"][0]  # already stored: the client skips the upload

    line = {"key": "lfsFile", "value": {"path": "blob.bin", "algo": "sha256", "oid": oid, "size": len(data)}}
    ndjson = b'{"key":"header","value":{"summary":"lfs","description":""}}\n' + json.dumps(line).encode()
    status, _, body = _call(conn, "POST", f"/api/models/{repo_id}/commit/main", ndjson, auth)
    assert status == 200
    sha = json.loads(body)["commitOid"]

    status, headers, body = _call(conn, "HEAD", f"/{repo_id}/resolve/main/blob.bin")
    assert (status, body) == (200, b"")
    assert headers["X-Repo-Commit"] == sha and headers["ETag"] == f'"{oid}"'
    assert headers["Content-Length"] == str(len(data))
    status, headers, body = _call(conn, "GET", f"/{repo_id}/resolve/{sha}/blob.bin", headers={"Range": "bytes=1000-"})
    assert status == 206 and body == data[1000:]
    assert headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    status, headers, _ = _call(conn, "GET", f"/{repo_id}/resolve/main/blob.bin", headers={"Range": "bytes=999999-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


def test_bad_uploads_are_client_errors(local_hub: HubFixture, conn: http.client.HTTPConnection) -> None:
    api = HfApi(token=local_hub.token)
    repo_id = api.create_repo("raw-bad", exist_ok=True).repo_id
    auth = {"Authorization": f"Bearer {local_hub.token}"}
    missing = {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "0" * 64, "size": 3}}
    header = b'{"key":"header","value":{"summary":"x"}}\n'
    escaping = header + b'{"key":"file","value":{"path":"../x"}}'
    for body in (header + json.dumps(missing).encode(), b"not json\n", escaping):
        status, headers, _ = _call(conn, "POST", f"/api/models/{repo_id}/commit/main", body, auth)
        assert status == 400, headers
    batch = {"operation": "upload", "objects": [{"oid": "zz", "size": 1}]}
    status, _, body = _call(conn, "POST", f"/{repo_id}.git/info/lfs/objects/batch", json.dumps(batch).encode(), auth)
    assert status == 200 and json.loads(body)["objects"][0]["error"]["code"] == 422
    status, _, _ = _call(conn, "PUT", f"/{repo_id}.git/info/lfs/objects/{'0' * 64}?ticket=forged", b"abc")
    assert status == 403
    status, headers, _ = _call(conn, "POST", f"/api/models/{repo_id}/commit/no-branch", header, auth)
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound"
    assert api.list_repo_files(repo_id) == [".gitattributes"]


def test_preupload_modes_oids_and_gitignore(local_hub: HubFixture, conn: http.client.HTTPConnection) -> None:
    api = HfApi(token=local_hub.token)
    repo_id = api.create_repo("raw-preupload", exist_ok=True).repo_id
    api.create_commit(
        repo_id,
        [
            CommitOperationAdd(path_in_repo="keep.txt", path_or_fileobj=b"same"),
            CommitOperationAdd(path_in_repo=".gitignore", path_or_fileobj=b"*.log\n/build/\n"),
        ],
        commit_message="seed",
    )
    files = [
        {"path": "keep.txt", "sample": base64.b64encode(b"same").decode(), "size": 4},
        {"path": "w.safetensors", "sample": base64.b64encode(b"\x08\0\0\0{}").decode(), "size": 10},
        {"path": "notes.safetensors", "sample": base64.b64encode(b"text").decode(), "size": 4},
        {"path": "big.json", "sample": "", "size": 2 * 1024 * 1024},
        {"path": "empty.bin", "sample": "", "size": 0},
        {"path": "logs/run.log", "sample": "", "size": 1},
        {"path": "build/out.txt", "sample": "", "size": 1},
    ]
    auth = {"Authorization": f"Bearer {local_hub.token}"}
    payload = json.dumps({"files": files}).encode()
    status, _, body = _call(conn, "POST", f"/api/models/{repo_id}/preupload/main", payload, auth)
    assert status == 200
    answers = {f["path"]: f for f in json.loads(body)["files"]}
    assert {p: a["uploadMode"] for p, a in answers.items()} == {
        "keep.txt": "regular",
        "w.safetensors": "lfs",
        "notes.safetensors": "regular",
        "big.json": "lfs",
        "empty.bin": "regular",
        "logs/run.log": "regular",
        "build/out.txt": "regular",
    }
    git_sha1 = hashlib.sha1(b"blob 4\0same").hexdigest()
    assert answers["keep.txt"]["oid"] == git_sha1 and answers["big.json"]["oid"] is None
    assert {p for p, a in answers.items() if a["shouldIgnore"]} == {"logs/run.log", "build/out.txt"}


def test_error_codes_and_tree_pagination(local_hub: HubFixture, conn: http.client.HTTPConnection) -> None:
    api = HfApi(token=local_hub.token)
    repo_id = api.create_repo("raw-tree", exist_ok=True).repo_id
    api.create_commit(
        repo_id,
        [CommitOperationAdd(path_in_repo=f"d/f{i}.txt", path_or_fileobj=b"x") for i in range(3)],
        commit_message="tree",
    )
    pages, path = [], f"/api/models/{repo_id}/tree/main?recursive=true&limit=2"
    while path:
        status, headers, body = _call(conn, "GET", path)
        assert status == 200
        pages.append([e["path"] for e in json.loads(body)])
        link = urlsplit(headers["Link"].split(";")[0].strip("<>")) if "Link" in headers else None
        path = f"{link.path}?{link.query}" if link else ""
    assert pages == [[".gitattributes", "d"], ["d/f0.txt", "d/f1.txt"], ["d/f2.txt"]]
    status, _, body = _call(conn, "GET", f"/api/models/{repo_id}/tree/main/d")
    assert [e["path"] for e in json.loads(body)] == ["d/f0.txt", "d/f1.txt", "d/f2.txt"]

    expectations = [
        (f"/api/models/{repo_id}/tree/main/nope", "EntryNotFound"),
        (f"/api/models/{repo_id}/revision/nope", "RevisionNotFound"),
        ("/api/models/local/nope", "RepoNotFound"),
        (f"/api/models/{repo_id}/revision/{'a' * 40}", "RevisionNotFound"),
        ("/api/models/local/..%2F..%2Fetc", "RepoNotFound"),
    ]
    for path, code in expectations:
        status, headers, _ = _call(conn, "GET", path)
        assert (status, headers.get("X-Error-Code")) == (404, code), path
    status, headers, _ = _call(conn, "HEAD", f"/{repo_id}/resolve/main/missing.txt")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and len(headers["X-Repo-Commit"]) == 40
