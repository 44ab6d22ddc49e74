"""Preflight step: prove, before anything expensive runs, that this run's model could be published.

A retraining run spends minutes to hours on extract, validation and training; finding out at the push that the
token is missing, read-only or for the wrong account wastes all of it. So the first task checks:

* **token**: one is configured (Airflow connection ``huggingface_default`` password, or ``HF_TOKEN``);
* **token valid**: the Hub accepts it (``whoami``);
* **write access**: the repo's namespace is the token's user or one of its orgs, and the token may write;
* **base model**: it resolves and really loads as a CrossEncoder (remote code never trusted), with its identity
  (and for a Hub repo, the commit sha the requested revision resolves to) recorded;
* **disk**: the artifacts disk has the free space the run needs.

Every check runs even when an earlier one failed, and every failure is reported in one exception, so a single
failed run tells the operator everything to fix. Failures a retry cannot fix raise :class:`PreflightFailed`
(a ``PermanentError``: the DAG fails without retrying). When the only failures are the Hub being unreachable or
answering 5xx/429, :class:`PreflightUnavailable` is raised instead: it is not a ``PermanentError``, so Airflow
retries the task.

The token is secret: it is never logged, never written to ``preflight.json`` and never part of an exception
message (messages from libraries are scrubbed of it, and exceptions are raised without their library cause,
whose text this module does not control).

No Airflow import: the DAG task resolves the token and passes plain values in.
"""

from __future__ import annotations

import functools
import gc
import importlib
import logging
import math
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reranker_tasks import layout
from reranker_tasks.errors import ConfigError, PreflightFailed, RerankerError
from reranker_tasks.modelio import BaseModelRef, load_cross_encoder, resolve_base_model
from reranker_tasks.paths import write_json_atomic

log = logging.getLogger(__name__)

PREFLIGHT_FILE = layout.PREFLIGHT_FILE
#: Airflow connection whose password holds the Hub token (the DAG's lookup; repeated here for the messages).
HUB_CONNECTION_ID = "huggingface_default"
TOKEN_HINT = (
    f"put a Hub write token in the password of the Airflow connection {HUB_CONNECTION_ID!r} "
    "or in the HF_TOKEN environment variable"
)
#: Disk sizes are decimal gigabytes (10**9 bytes), as ``min_free_gb`` is documented.
GB = 10**9
#: HTTP statuses that say "try again later", not "this request is wrong".
_TRANSIENT_STATUS = frozenset({408, 425, 429})
_MESSAGE_LIMIT = 400
_REDACTED = "[token]"


class PreflightUnavailable(RerankerError):
    """Preflight could not finish because the Hub was unreachable or failing (connection error, 5xx, 429).

    Deliberately *not* a ``PermanentError``: the checks themselves did not fail, so a retry of the task may pass.

    Args:
        failures: one line per check that could not run; never the token.
        report_path: where ``preflight.json`` was written, if it was.
    """

    def __init__(self, failures: list[str], report_path: str | None = None) -> None:
        self.failures = list(failures)
        self.report_path = report_path
        lines = [f"preflight could not finish ({len(self.failures)} check(s)); a retry may succeed:"]
        lines += [f"  - {failure}" for failure in self.failures]
        if report_path:
            lines.append(f"  full report: {report_path}")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class CheckFailure:
    """One failed check. ``kind`` is ``config`` (fix the settings), ``permanent`` or ``transient`` (retry)."""

    check: str
    message: str
    kind: str = "permanent"

    @property
    def transient(self) -> bool:
        return self.kind == "transient"

    def line(self) -> str:
        suffix = " [transient: a retry may succeed]" if self.transient else ""
        return f"{self.check}: {self.message}{suffix}"


@dataclass(frozen=True)
class PreflightResult:
    """What preflight established; small and JSON-safe, so it can go to XCom as ``to_dict()``."""

    hub_endpoint: str
    repo_id: str
    hub_user: str
    token_role: str | None
    repo_exists: bool
    base_model: str
    base_model_path: str
    base_model_hub_id: str | None
    base_model_revision: str | None
    base_model_sha: str | None
    artifacts_dir: str
    disk_checked_at: str
    free_gb: float
    min_free_gb: float
    init_from: str = "base"
    #: With ``init_from: champion``: the production commit the train step continues from (pinned here, so a
    #: promotion by another run between preflight and train cannot change what this run warm-starts from).
    champion_commit: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data


@dataclass
class _Outcome:
    """Collects facts and failures across all checks; scrubs the token out of everything it stores."""

    secrets: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict)
    failures: list[CheckFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, _REDACTED)
        return text

    def fail(self, check: str, message: str, kind: str = "permanent") -> None:
        failure = CheckFailure(check, self.scrub(message), kind)
        self.failures.append(failure)
        log.warning("preflight check failed: %s", failure.line())

    def warn(self, message: str) -> None:
        message = self.scrub(message)
        self.warnings.append(message)
        log.warning("preflight warning: %s", message)


def run_preflight(
    *,
    repo_id: str,
    token: str | None,
    base_model: str,
    base_model_revision: str | None,
    max_length: int,
    seed: int,
    artifacts_dir: Path,
    min_free_gb: float,
    out_dir: Path,
    endpoint: str | None = None,
    init_from: str = "base",
) -> PreflightResult:
    """Run every preflight check, write ``out_dir/preflight.json``, and fail with all problems at once.

    Args:
        repo_id: the Hub repo the model will be published to (``namespace/name``).
        token: the Hub token the publish step will use (``None`` or blank: not configured).
        base_model: as configured (``package:...`` alias, local folder, or Hub repo id).
        base_model_revision: branch, tag or commit of a Hub base model; only valid for a Hub repo id.
        max_length, seed: as the train step will load the model.
        artifacts_dir: where the run writes its artifacts (need not exist yet).
        min_free_gb: free space (10**9 bytes) required on the disk holding ``artifacts_dir``.
        out_dir: the step folder; ``preflight.json`` goes here.
        init_from: ``base`` or ``champion`` (warm start: the repo's ``main`` must hold a model).
        endpoint: Hub endpoint for the API checks (default: ``HF_ENDPOINT``). The model load itself always goes
            through ``HF_ENDPOINT``: transformers has no per-call endpoint.

    Returns:
        The facts established (user, token role, resolved base model and sha, free disk).

    Raises:
        PreflightFailed: at least one check failed for a reason a retry cannot fix; lists every failure.
        PreflightUnavailable: the only failures were the Hub being unreachable or failing; retry.
    """
    from huggingface_hub import HfApi

    secret = (token or "").strip()
    outcome = _Outcome(secrets=tuple(s for s in {secret, token or ""} if s))
    api = HfApi(endpoint=endpoint, token=secret or False, library_name="reranker-preflight")
    outcome.facts.update(hub_endpoint=str(api.endpoint), repo_id=repo_id)

    _check_disk(outcome, Path(artifacts_dir), min_free_gb)
    whoami, token_usable = _check_token(outcome, api, secret)
    _check_write_access(outcome, api, repo_id, whoami)
    _check_base_model(
        outcome,
        api,
        base_model=base_model,
        revision=base_model_revision,
        max_length=max_length,
        seed=seed,
        token=secret if token_usable else None,
    )
    _check_init_from(outcome, api, repo_id, init_from)

    report_path = Path(out_dir) / PREFLIGHT_FILE
    report: dict[str, Any] = {
        "ok": not outcome.failures,
        **outcome.facts,
        "warnings": list(outcome.warnings),
        "failures": [asdict(f) for f in outcome.failures],
    }
    write_json_atomic(report_path, report)
    if outcome.failures:
        lines = [f.line() for f in outcome.failures]
        if any(not f.transient for f in outcome.failures):
            raise PreflightFailed(lines, report_path=str(report_path)) from None
        raise PreflightUnavailable(lines, report_path=str(report_path)) from None

    result = PreflightResult(**outcome.facts, warnings=tuple(outcome.warnings))
    log.info(
        "preflight passed: %s can write %s; base model %s loads (sha %s); %.1f GB free under %s",
        result.hub_user, result.repo_id, result.base_model, result.base_model_sha or "-", result.free_gb,
        result.disk_checked_at,
    )
    return result


# --------------------------------------------------------------------------------------------------- warm start


def _check_init_from(outcome: _Outcome, api: Any, repo_id: str, init_from: str) -> None:
    """``init_from: champion`` needs a model on ``main``: the first run of a repo has nothing to continue from."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    outcome.facts.update(init_from=init_from, champion_commit=None)
    if init_from == "base":
        return
    if init_from != "champion":
        outcome.fail("init_from", f"init_from: expected 'base' or 'champion', got {init_from!r}", kind="config")
        return
    try:
        info = api.model_info(repo_id, revision="main", files_metadata=False)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        info = None
    except HfHubHTTPError as exc:
        outcome.fail("init_from", f"cannot look up the champion of {repo_id}: {_describe(exc)}", kind=_kind(exc))
        return
    files = {s.rfilename for s in (info.siblings or [])} if info is not None else set()
    if layout.MODEL_WEIGHTS_FILE not in files:
        outcome.fail(
            "init_from",
            f"init_from: 'champion' but {repo_id} has no model in production (no model.safetensors on main); "
            "use init_from 'base' for a repo's first model",
            kind="config",
        )
        return
    outcome.facts["champion_commit"] = info.sha


# --------------------------------------------------------------------------------------------------- disk


def _check_disk(outcome: _Outcome, artifacts_dir: Path, min_free_gb: float) -> None:
    """The artifacts folder may not exist yet (first run): measure the disk of its nearest existing parent."""
    probe = nearest_existing(artifacts_dir)
    outcome.facts.update(artifacts_dir=str(artifacts_dir), disk_checked_at=str(probe), min_free_gb=min_free_gb)
    outcome.facts.setdefault("free_gb", 0.0)
    valid = isinstance(min_free_gb, (int, float)) and not isinstance(min_free_gb, bool)
    if not valid or not math.isfinite(min_free_gb) or min_free_gb < 0:
        outcome.fail("disk", f"min_free_gb must be a finite number >= 0, got {min_free_gb!r}", kind="config")
        return
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        outcome.fail("disk", f"cannot measure free space under {probe}: {_describe(exc)}")
        return
    free_gb = usage.free / GB
    outcome.facts["free_gb"] = round(free_gb, 2)
    if free_gb < min_free_gb:
        outcome.fail(
            "disk",
            f"only {free_gb:.2f} GB free on the disk holding {artifacts_dir} (measured at {probe}); "
            f"{min_free_gb:g} GB required (min_free_gb): free space or lower min_free_gb",
        )


def nearest_existing(path: Path) -> Path:
    """``path`` itself, or its closest ancestor that exists (the filesystem root at worst)."""
    current = path.expanduser().absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


# -------------------------------------------------------------------------------------------------- token


def _check_token(outcome: _Outcome, api: Any, secret: str) -> tuple[dict[str, Any] | None, bool]:
    """Returns ``(whoami, usable)``: the whoami reply when the Hub accepted the token, and whether the token may
    still be sent with later requests (not when it is missing, malformed or rejected: that would only repeat
    the 401 in every other check)."""
    from huggingface_hub.errors import HfHubHTTPError

    outcome.facts.update(hub_user="", token_role=None)
    if not secret:
        outcome.fail("token", f"no Hub token is configured: {TOKEN_HINT}", kind="config")
        return None, False
    if any(ch.isspace() or not ch.isprintable() for ch in secret):
        # Never echo it: an HTTP library would put the malformed header value into its error text.
        outcome.fail("token", f"the Hub token contains whitespace or control characters (a paste error?): {TOKEN_HINT}",
                     kind="config")
        return None, False
    try:
        whoami = api.whoami()
    except HfHubHTTPError as exc:
        status = _status(exc)
        if status == 401:
            outcome.fail("token", f"Hub token rejected (HTTP 401 from {api.endpoint}): it is invalid, expired or for "
                                  f"another Hub; {TOKEN_HINT}")
            return None, False
        outcome.fail("token", f"cannot verify the Hub token at {api.endpoint}: {_describe(exc)}", _kind(exc))
        return None, _kind(exc) == "transient"
    except Exception as exc:  # noqa: BLE001 - classified below; unknown errors are reported, not raised
        outcome.fail("token", f"cannot verify the Hub token at {api.endpoint}: {_describe(exc)}", _kind(exc))
        return None, _kind(exc) == "transient"
    if not isinstance(whoami, Mapping) or not isinstance(whoami.get("name"), str):
        outcome.fail("token", f"unexpected whoami reply from {api.endpoint} (no user name)")
        return None, True
    access = _token_access(whoami)
    outcome.facts.update(hub_user=whoami["name"], token_role=access.get("role"))
    log.info("preflight: the Hub accepts the token of %s (role %s)", whoami["name"], access.get("role") or "unknown")
    return dict(whoami), True


def _token_access(whoami: Mapping[str, Any]) -> Mapping[str, Any]:
    auth = whoami.get("auth")
    access = auth.get("accessToken") if isinstance(auth, Mapping) else None
    return access if isinstance(access, Mapping) else {}


# ------------------------------------------------------------------------------------------- write access


def write_access_problems(whoami: Mapping[str, Any], repo_id: str) -> list[str]:
    """Why the token described by ``whoami`` cannot write ``repo_id`` (empty: it can, as far as whoami tells).

    Checks the token role (``read`` never writes; a fine-grained token needs ``repo.write`` on the namespace or
    the repo), that the namespace is the user or one of its orgs, and the user's role in that org.
    Namespaces compare case-insensitively: Hub names are unique regardless of case.
    """
    problems: list[str] = []
    user = str(whoami.get("name") or "")
    namespace = repo_id.split("/", 1)[0]
    orgs: dict[str, str | None] = {}
    for org in whoami.get("orgs") or []:
        if isinstance(org, Mapping) and isinstance(org.get("name"), str):
            role = org.get("roleInOrg")
            orgs[org["name"].lower()] = role if isinstance(role, str) else None
    access = _token_access(whoami)
    role = access.get("role")
    if role == "read":
        problems.append(f"the token's role is 'read'; publishing needs a 'write' token ({TOKEN_HINT})")
    elif role == "fineGrained" and isinstance(access.get("fineGrained"), Mapping):
        if not _fine_grained_can_write(access["fineGrained"], namespace, repo_id):
            problems.append(
                f"the fine-grained token grants no 'repo.write' on {namespace!r} or {repo_id!r}; "
                "add that permission to the token or use a 'write' token"
            )
    if namespace.lower() == user.lower():
        return problems
    if namespace.lower() in orgs:
        org_role = orgs[namespace.lower()]
        if org_role == "read":
            problems.append(f"user {user!r} is only a 'read' member of the org {namespace!r}")
        return problems
    known = sorted(o for o in orgs) or ["none"]
    problems.append(
        f"namespace {namespace!r} is neither the token's user {user!r} nor one of its orgs ({', '.join(known)}); "
        f"use a repo_id under {user!r} or an org the user belongs to, or a token of the namespace's owner"
    )
    return problems


def _fine_grained_can_write(fine_grained: Mapping[str, Any], namespace: str, repo_id: str) -> bool:
    targets = {namespace.lower(), repo_id.lower()}
    for scope in fine_grained.get("scoped") or []:
        if not isinstance(scope, Mapping):
            continue
        entity = scope.get("entity")
        name = entity.get("name") if isinstance(entity, Mapping) else None
        permissions = scope.get("permissions") or []
        if isinstance(name, str) and name.lower() in targets and "repo.write" in permissions:
            return True
    return False


def _check_write_access(outcome: _Outcome, api: Any, repo_id: str, whoami: Mapping[str, Any] | None) -> None:
    """Skipped (no failure of its own) when the token check already failed: nothing more can be known."""
    from huggingface_hub.errors import RepositoryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    outcome.facts["repo_exists"] = False
    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise ValueError("expected 'namespace/name'")
    except ValueError as exc:
        outcome.fail("repo_id", f"{repo_id!r} is not a Hub model repo id ('namespace/name'): {_describe(exc)}",
                     kind="config")
        return
    if whoami is None:
        return
    owner: str | None = None
    try:
        info = api.model_info(repo_id)
        outcome.facts["repo_exists"] = True
        owner = str(getattr(info, "author", None) or repo_id.split("/", 1)[0])
    except RepositoryNotFoundError:
        pass  # the publish step creates it
    except Exception as exc:  # noqa: BLE001 - classified below
        outcome.fail("write_access", f"cannot look up {repo_id!r} on {api.endpoint}: {_describe(exc)}", _kind(exc))
        return
    problems = write_access_problems(whoami, repo_id)
    if problems:
        where = f"{repo_id!r} already exists and is owned by {owner!r}" if owner else f"{repo_id!r} does not exist"
        outcome.fail("write_access", f"the token cannot write {repo_id!r} ({where}): " + "; ".join(problems))


# ------------------------------------------------------------------------------------------------ base model


def _check_base_model(
    outcome: _Outcome,
    api: Any,
    *,
    base_model: str,
    revision: str | None,
    max_length: int,
    seed: int,
    token: str | None,
) -> None:
    """Resolve and really load the base model the way the train step will (``load_cross_encoder``, which never
    trusts remote code), so a typo, a broken folder or a gated repo fails here, not after extract and validate."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    outcome.facts.update(base_model=base_model, base_model_path="", base_model_hub_id=None,
                         base_model_revision=revision, base_model_sha=None)
    try:
        ref: BaseModelRef = resolve_base_model(base_model)
    except ConfigError as exc:
        outcome.fail("base_model", str(exc), kind="config")
        return
    outcome.facts.update(base_model_path=ref.load_path, base_model_hub_id=ref.hub_id)
    from_hub = ref.hub_id is not None and ref.load_path == ref.hub_id
    load_revision: str | None = None
    if revision is not None:
        if not revision.strip():
            outcome.fail("base_model_revision", "must not be empty (leave it unset for the default branch)",
                         kind="config")
        elif not from_hub:
            what = "a local folder" if ref.hub_id is None else "an installed package"
            outcome.fail(
                "base_model_revision",
                f"{revision!r} was given, but base_model {base_model!r} is {what}, not a Hub repo id; "
                "a revision only applies to a Hub repo (unset it, or point base_model at the Hub repo)",
                kind="config",
            )
        else:
            load_revision = revision

    if from_hub:
        shown = f"{ref.load_path}@{load_revision}" if load_revision else ref.load_path
        try:
            info = api.model_info(ref.load_path, revision=load_revision, token=token or False)
        except RevisionNotFoundError:
            outcome.fail("base_model", f"{ref.load_path!r} has no revision {load_revision!r} on {api.endpoint}")
            return
        except GatedRepoError:
            outcome.fail("base_model", f"{shown!r} is gated: accept its terms with the token's account")
            return
        except RepositoryNotFoundError:
            outcome.fail(
                "base_model",
                f"{ref.load_path!r} was not found on {api.endpoint} (a typo, or private and the token cannot read it)",
            )
            return
        except Exception as exc:  # noqa: BLE001 - classified below
            outcome.fail("base_model", f"cannot look up {shown!r} on {api.endpoint}: {_describe(exc)}", _kind(exc))
            return  # loading would only retry the same unreachable Hub for about a minute
        outcome.facts["base_model_sha"] = getattr(info, "sha", None)

    try:
        model = load_cross_encoder(ref.load_path, max_length, seed, revision=load_revision, token=token)
    except Exception as exc:  # noqa: BLE001 - any load failure is a finding; the kind decides retry or not
        outcome.fail("base_model", f"{base_model!r} does not load as a CrossEncoder: {_describe(exc)}", _kind(exc))
        return
    try:
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int) and not isinstance(limit, bool) and max_length > limit:
            outcome.warn(
                f"max_length {max_length} exceeds the base model's {limit} positions: "
                "pairs longer than that would fail in training; lower max_length"
            )
    finally:
        del model
        gc.collect()
    log.info("preflight: base model %s loads (from %s)", base_model, ref.load_path)


# ------------------------------------------------------------------------------------------ error helpers


@functools.cache
def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection-level error types of whichever HTTP stacks are installed (huggingface_hub uses httpx2)."""
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name, attributes in (
        ("httpx2", ("TransportError",)),
        ("httpx", ("TransportError",)),
        ("requests.exceptions", ("ConnectionError", "Timeout")),
    ):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for attribute in attributes:
            candidate = getattr(module, attribute, None)
            if isinstance(candidate, type) and issubclass(candidate, BaseException):
                types.append(candidate)
    return tuple(types)


def _status(exc: BaseException) -> int | None:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _kind(exc: BaseException) -> str:
    """``transient`` for network errors, 5xx, 408/425/429 anywhere in the cause chain; else ``permanent``.

    The first HTTP status found decides (a 404 wrapped by transformers stays permanent); offline mode is a
    setting, not an outage, so it is permanent although huggingface_hub makes it a ``ConnectionError``.
    """
    from huggingface_hub.errors import OfflineModeIsEnabled

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OfflineModeIsEnabled):
            return "permanent"
        status = _status(current)
        if status is not None:
            return "transient" if status >= 500 or status in _TRANSIENT_STATUS else "permanent"
        if isinstance(current, _network_errors()):
            return "transient"
        current = current.__cause__ or current.__context__
    return "permanent"


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line, bounded: library messages can span pages."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set, so nothing could be published: unset it for this deployment"
    text = re.sub(r"\s+", " ", str(exc)).strip()
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
