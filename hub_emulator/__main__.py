"""Command line of the hub emulator.

``serve`` runs it in the foreground (for docker-compose or a dev shell), ``ls`` shows what was pushed by reading the
storage directly, so it works with no server running, and ``token`` prints the credential to put in ``HF_TOKEN``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

from hub_emulator.server import HubServer
from hub_emulator.storage import DEFAULT_BRANCH, HubStorage, ensure_token


def _serve(root: Path, host: str, port: int) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with HubServer(root=root, host=host, port=port) as server:
        print(f"hub emulator listening on {server.endpoint} (root {root.resolve()})", flush=True)
        stopping.wait()
    return 0


def _short_date(iso: str) -> str:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").strftime("%Y-%m-%d %H:%M:%S UTC")


def _ls(root: Path) -> int:
    if not (root / "repos").is_dir():  # do not create storage just to report that it is empty
        print("no repos")
        return 0
    storage = HubStorage(root)
    repos = storage.list_repos()
    if not repos:
        print("no repos")
    for repo in repos:
        refs = storage.refs(repo)
        visibility = " (private)" if storage.meta(repo).private else ""
        print(f"{repo.type} {repo.full}{visibility}")
        print("  branches: " + ", ".join(f"{name} -> {sha[:7]}" for name, sha in sorted(refs.branches.items())))
        print(f"  commits on {DEFAULT_BRANCH}, newest first:")
        for commit in storage.history(repo, DEFAULT_BRANCH):
            print(f"    {commit.id[:7]}  {_short_date(commit.date)}  {commit.title}")
        print("  tags:" + ("" if refs.tags else " none"))
        for name, tag in sorted(refs.tags.items()):
            print(f"    {name} -> {tag.commit[:7]}" + (f"  ({tag.message})" if tag.message else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub_emulator", description="Loopback Hugging Face Hub emulator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Hub API in the foreground until SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=os.environ.get("LOCALHUB_PORT", "8791"))
    commands.add_parser("ls", help="list repos, branches, commits of main and tags (no server needed)")
    commands.add_parser("token", help="print the access token, creating it if missing")
    for sub in commands.choices.values():
        sub.add_argument("--root", type=Path, default=Path(".localhub"), help="storage folder (default .localhub)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args.root, args.host, args.port)
    if args.command == "ls":
        return _ls(args.root)
    print(ensure_token(args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
