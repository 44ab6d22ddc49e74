"""Preflight against the real loopback Hub (real ``huggingface_hub`` calls) and a real tiny BERT base model.

What matters: every check runs and every failure is reported at once; a retry-fixable outage is *not* a
``PermanentError`` (Airflow retries it) while everything else is; the token never leaks into messages, logs or
``preflight.json``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reranker_tasks.errors import PermanentError, PreflightFailed, RerankerError
from reranker_tasks.preflight import (
    PREFLIGHT_FILE,
    PreflightResult,
    PreflightUnavailable,
    nearest_existing,
    run_preflight,
    write_access_problems,
)
from tests.support import TOPICS, build_tiny_bert

if TYPE_CHECKING:
    from tests.conftest import LocalHub  # importing conftest again would re-run its set-up

WRONG_TOKEN = "hf_wrongWRONGwrong0123456789abcdefXYZ"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("base") / "tiny-bert", ["how to fix the page", *TOPICS])


@pytest.fixture(scope="module")
def hub_base_model(local_hub: LocalHub, tiny_bert: Path) -> str:
    """The tiny BERT published on the loopback Hub, to test a Hub base model with a revision."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    repo_id = "local/preflight-tiny-base"
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=str(tiny_bert), repo_id=repo_id, commit_message="tiny base")
    return repo_id


def _closed_port_endpoint() -> str:
    """An endpoint nothing listens on: bind a port, then release it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _run(local_hub: LocalHub, tmp_path: Path, base: Path, **overrides: Any) -> PreflightResult:
    kwargs: dict[str, Any] = {
        "repo_id": "local/preflight-reranker",
        "token": local_hub.token,
        "base_model": str(base),
        "base_model_revision": None,
        "max_length": 32,
        "seed": 0,
        "artifacts_dir": tmp_path / "artifacts",
        "min_free_gb": 0.0,
        "out_dir": tmp_path / "preflight",
        "endpoint": local_hub.endpoint,
    }
    kwargs.update(overrides)
    return run_preflight(**kwargs)


def _report(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "preflight" / PREFLIGHT_FILE).read_text(encoding="utf-8"))


def _full_text(exc: BaseException) -> str:
    """Message plus the whole printed traceback, chained causes included: what an Airflow log would show."""
    return "".join(traceback.format_exception(exc))


# ------------------------------------------------------------------------------------------------ pass


def test_good_token_passes_and_records_what_it_found(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = _run(local_hub, tmp_path, tiny_bert, artifacts_dir=tmp_path / "not" / "yet" / "there")

    assert result.hub_user == "local"
    assert result.token_role == "write"
    assert result.repo_id == "local/preflight-reranker"
    assert result.repo_exists is False
    assert result.base_model_path == str(tiny_bert.resolve())
    assert result.base_model_hub_id is None and result.base_model_sha is None
    assert result.disk_checked_at == str(tmp_path)  # nearest existing parent of the missing folder
    assert result.free_gb > 0
    assert result.warnings == ()

    payload = result.to_dict()
    assert json.loads(json.dumps(payload)) == payload  # XCom-safe
    report = _report(tmp_path)
    assert report["ok"] is True and report["failures"] == []
    assert {k: report[k] for k in payload} == payload

    raw = (tmp_path / "preflight" / PREFLIGHT_FILE).read_text(encoding="utf-8")
    assert local_hub.token not in raw
    assert local_hub.token not in caplog.text


def test_repo_that_exists_in_own_namespace_passes(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    from huggingface_hub import HfApi

    HfApi(endpoint=local_hub.endpoint, token=local_hub.token).create_repo("local/preflight-existing", exist_ok=True)
    result = _run(local_hub, tmp_path, tiny_bert, repo_id="local/preflight-existing")
    assert result.repo_exists is True


def test_token_is_stripped_of_surrounding_whitespace(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    """Connection passwords pasted with a trailing newline still work."""
    assert _run(local_hub, tmp_path, tiny_bert, token=f"  {local_hub.token}\n").hub_user == "local"


def test_max_length_beyond_the_model_positions_is_a_warning(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path
) -> None:
    result = _run(local_hub, tmp_path, tiny_bert, max_length=512)  # tiny BERT has 128 positions
    assert len(result.warnings) == 1 and "128 positions" in result.warnings[0]


# --------------------------------------------------------------------------------------------- token


@pytest.mark.parametrize("token", [None, "", "   \n"])
def test_missing_token_says_where_to_put_it(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path, token: str | None
) -> None:
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, token=token)
    message = str(info.value)
    assert "huggingface_default" in message and "HF_TOKEN" in message
    assert len(info.value.failures) == 1
    assert _report(tmp_path)["failures"] == [
        {"check": "token", "kind": "config", "message": info.value.failures[0].removeprefix("token: ")}
    ]


def test_wrong_token_is_a_permanent_401(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, token=WRONG_TOKEN)
    assert isinstance(info.value, PermanentError)
    assert "Hub token rejected" in str(info.value) and "401" in str(info.value)
    assert len(info.value.failures) == 1  # write access is skipped, the base model still loads (local folder)
    assert _report(tmp_path)["ok"] is False


def test_token_with_inner_whitespace_is_refused_without_echoing_it(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path
) -> None:
    bad = "hf_secretPART1 secretPART2\x07secretPART3"
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, token=bad)
    assert "whitespace or control characters" in str(info.value)
    for part in ("secretPART1", "secretPART2", "secretPART3"):
        assert part not in _full_text(info.value)


# -------------------------------------------------------------------------------------------- access


def test_namespace_the_user_cannot_write_fails(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, repo_id="someone-else/reranker")
    message = str(info.value)
    assert "write_access" in message
    assert "'someone-else' is neither the token's user 'local' nor one of its orgs" in message
    assert "does not exist" in message


def test_existing_repo_owned_elsewhere_says_so(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    from huggingface_hub import HfApi

    # The emulator's single token owns every namespace, so it can plant a repo "owned" by another namespace.
    HfApi(endpoint=local_hub.endpoint, token=local_hub.token).create_repo("other-team/taken", exist_ok=True)
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, repo_id="other-team/taken")
    assert "'other-team/taken' already exists and is owned by 'other-team'" in str(info.value)


def test_malformed_repo_id_is_a_config_failure(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(PreflightFailed, match="repo_id: 'no-namespace' is not a Hub model repo id"):
        _run(local_hub, tmp_path, tiny_bert, repo_id="no-namespace")


WHOAMI = {"type": "user", "name": "alice", "orgs": [{"name": "AcmeML", "roleInOrg": "write"},
                                                    {"name": "readers", "roleInOrg": "read"}]}


def _whoami(access: dict[str, Any]) -> dict[str, Any]:
    return {**WHOAMI, "auth": {"type": "access_token", "accessToken": access}}


@pytest.mark.parametrize(
    ("access", "repo_id", "expected"),
    [
        ({"role": "write"}, "alice/r", None),
        ({"role": "write"}, "acmeml/r", None),  # org names compare case-insensitively
        ({}, "alice/r", None),  # no role reported (e.g. OAuth): not refused on that ground
        ({"role": "read"}, "alice/r", "role is 'read'"),
        ({"role": "write"}, "readers/r", "only a 'read' member of the org 'readers'"),
        ({"role": "write"}, "bob/r", "neither the token's user 'alice' nor one of its orgs (acmeml, readers)"),
        (
            {"role": "fineGrained", "fineGrained": {"scoped": [
                {"entity": {"type": "org", "name": "AcmeML"}, "permissions": ["repo.content.read", "repo.write"]}]}},
            "AcmeML/r",
            None,
        ),
        (
            {"role": "fineGrained", "fineGrained": {"scoped": [
                {"entity": {"type": "model", "name": "alice/r"}, "permissions": ["repo.write"]}]}},
            "alice/r",
            None,
        ),
        (
            {"role": "fineGrained", "fineGrained": {"scoped": [
                {"entity": {"type": "user", "name": "alice"}, "permissions": ["repo.content.read"]}]}},
            "alice/r",
            "grants no 'repo.write'",
        ),
    ],
)
def test_write_access_rules(access: dict[str, Any], repo_id: str, expected: str | None) -> None:
    """Token roles and org roles the emulator does not issue (it only has one 'write' token)."""
    problems = write_access_problems(_whoami(access), repo_id)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


# ---------------------------------------------------------------------------------------------- transient


def test_unreachable_hub_is_transient_not_permanent(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(PreflightUnavailable) as info:
        _run(local_hub, tmp_path, tiny_bert, endpoint=_closed_port_endpoint())
    assert not isinstance(info.value, PermanentError)
    assert isinstance(info.value, RerankerError)
    assert "a retry may succeed" in str(info.value) and "ConnectError" in str(info.value)
    assert [f["kind"] for f in _report(tmp_path)["failures"]] == ["transient"]
    assert local_hub.token not in _full_text(info.value)


class _Always503(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b'{"error": "maintenance"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture()
def hub_503() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Always503)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_hub_5xx_is_transient(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path, hub_503: str) -> None:
    with pytest.raises(PreflightUnavailable) as info:
        _run(local_hub, tmp_path, tiny_bert, endpoint=hub_503)
    assert not isinstance(info.value, PermanentError)
    assert "503" in str(info.value)


def test_unreachable_hub_plus_a_permanent_problem_is_permanent_and_lists_both(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path
) -> None:
    """A retry cannot fix the disk, so no retry: but the outage is still reported."""
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, endpoint=_closed_port_endpoint(), min_free_gb=1e9)
    assert [f.split(":", 1)[0] for f in info.value.failures] == ["disk", "token"]
    assert "[transient: a retry may succeed]" in info.value.failures[1]


# -------------------------------------------------------------------------------------------------- disk


def test_low_disk_fails_naming_path_free_and_required(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    artifacts = tmp_path / "artifacts" / "run-1"
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, artifacts_dir=artifacts, min_free_gb=1e9)
    message = str(info.value)
    assert str(artifacts) in message and str(tmp_path) in message
    assert "GB free" in message and "1e+09 GB required" in message
    assert len(info.value.failures) == 1


def test_nearest_existing_walks_up(tmp_path: Path) -> None:
    assert nearest_existing(tmp_path / "a" / "b" / "c") == tmp_path
    assert nearest_existing(tmp_path) == tmp_path


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_min_free_gb_is_a_config_failure(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path, value: float
) -> None:
    with pytest.raises(PreflightFailed, match="min_free_gb must be a finite number"):
        _run(local_hub, tmp_path, tiny_bert, min_free_gb=value)


# -------------------------------------------------------------------------------------------- base model


def test_broken_base_model_folder_fails(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert"', encoding="utf-8")
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, base_model=str(broken))
    assert "base_model:" in str(info.value) and "does not load as a CrossEncoder" in str(info.value)


def test_missing_base_model_folder_fails(local_hub: LocalHub, tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(PreflightFailed, match="neither an existing folder nor a Hub repo id"):
        _run(local_hub, tmp_path, tiny_bert, base_model=str(tmp_path / "no-such-model"))


def test_revision_for_a_local_folder_is_a_config_failure(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path
) -> None:
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, base_model_revision="main")
    assert "base_model_revision: 'main' was given" in str(info.value) and "local folder" in str(info.value)
    assert _report(tmp_path)["failures"][0]["kind"] == "config"


def test_hub_base_model_revision_resolves_to_a_sha(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path, hub_base_model: str
) -> None:
    from huggingface_hub import HfApi

    expected = HfApi(endpoint=local_hub.endpoint, token=local_hub.token).model_info(hub_base_model).sha
    result = _run(local_hub, tmp_path, tiny_bert, base_model=hub_base_model, base_model_revision="main")
    assert result.base_model_hub_id == hub_base_model
    assert result.base_model_revision == "main"
    assert result.base_model_sha == expected and len(expected or "") == 40

    pinned = _run(local_hub, tmp_path, tiny_bert, base_model=hub_base_model, base_model_revision=expected)
    assert pinned.base_model_sha == expected


def test_hub_base_model_unknown_revision_or_repo_fails(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path, hub_base_model: str
) -> None:
    with pytest.raises(PreflightFailed, match="has no revision 'no-such-branch'"):
        _run(local_hub, tmp_path, tiny_bert, base_model=hub_base_model, base_model_revision="no-such-branch")
    with pytest.raises(PreflightFailed, match="'local/no-such-base' was not found"):
        _run(local_hub, tmp_path, tiny_bert, base_model="local/no-such-base")


# ------------------------------------------------------------------------------------------ all together


def test_several_failures_are_all_reported(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("not json", encoding="utf-8")
    with pytest.raises(PreflightFailed) as info:
        _run(
            local_hub, tmp_path, tiny_bert,
            token=WRONG_TOKEN, base_model=str(broken), base_model_revision="v1", min_free_gb=1e9,
        )
    checks = [f.split(":", 1)[0] for f in info.value.failures]
    assert checks == ["disk", "token", "base_model_revision", "base_model"]
    message = str(info.value)
    assert "preflight failed (4 check(s))" in message
    assert "Hub token rejected" in message and "GB required" in message and "does not load" in message
    report = _report(tmp_path)
    assert [f["check"] for f in report["failures"]] == checks
    assert info.value.report_path == str(tmp_path / "preflight" / PREFLIGHT_FILE)

    for text in (_full_text(info.value), json.dumps(report), caplog.text):
        assert WRONG_TOKEN not in text
        assert WRONG_TOKEN[:12] not in text  # not even partially


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"repo_id": "someone-else/reranker"},
        {"min_free_gb": 1e9},
        {"endpoint": "closed"},
        {"base_model": "local/no-such-base"},
    ],
    ids=["pass", "namespace", "disk", "unreachable", "missing-hub-base"],
)
def test_valid_token_never_appears_anywhere(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path, caplog: pytest.LogCaptureFixture, overrides: dict[str, Any]
) -> None:
    caplog.set_level(logging.DEBUG)
    if overrides.get("endpoint") == "closed":
        overrides = {**overrides, "endpoint": _closed_port_endpoint()}
    texts = [caplog.text]
    try:
        _run(local_hub, tmp_path, tiny_bert, **overrides)
    except (PreflightFailed, PreflightUnavailable) as exc:
        texts.append(_full_text(exc))
    texts += [caplog.text, (tmp_path / "preflight" / PREFLIGHT_FILE).read_text(encoding="utf-8")]
    for text in texts:
        assert local_hub.token not in text
        assert local_hub.token[:12] not in text


# ------------------------------------------------------------------------------------------------ warm start


def test_init_from_champion_without_a_champion_fails_naming_the_key(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path
) -> None:
    with pytest.raises(PreflightFailed) as info:
        _run(local_hub, tmp_path, tiny_bert, repo_id="local/no-champion-yet", init_from="champion")
    assert "init_from" in str(info.value) and "no model in production" in str(info.value)
    assert isinstance(info.value, PermanentError)
    assert _report(tmp_path)["failures"][0]["check"] == "init_from"


def test_init_from_champion_pins_the_production_commit(
    local_hub: LocalHub, tmp_path: Path, tiny_bert: Path
) -> None:
    from huggingface_hub import HfApi

    from tests.support import seed_untuned_champion

    api = HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    commit = seed_untuned_champion(api, "local/warm-start", tiny_bert, tmp_path / "champ", "v-seed")
    result = _run(local_hub, tmp_path, tiny_bert, repo_id="local/warm-start", init_from="champion")
    assert result.init_from == "champion" and result.champion_commit == commit
    assert _run(local_hub, tmp_path, tiny_bert, repo_id="local/warm-start").champion_commit is None
