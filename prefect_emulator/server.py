"""The HTTP side: GraphQL over `POST /` and `POST /graphql`, `GET /health`, API-key checks, CORS, one log line
per operation, and the background thread (zombie killer, Lazarus, scheduler).

Answers follow Hasura/Apollo as Prefect Server runs them: GraphQL errors (syntax, validation, refusals)
come with HTTP 200 and `{"errors": [...]}`; an unparseable JSON body gets 400, a body over 10 MB gets 413,
both with the same `{"errors": [{"message": ...}]}` shape. No answer ever carries a traceback.

A JSON array body is Apollo's batch (the UI's BatchHttpLink sends one): each operation is answered on its
own, in order, so one failing operation never fails the others; a batch over MAX_BATCH operations is refused
whole with HTTP 400. Validation adds Server's depth limit (depth.py) to graphql's rules.

Parsing and validating a query costs four times what running it does (an agent's poll: about 2 ms of 2.5), and
clients send the same few query texts again and again (every agent polls with one text every 1.1 s), so each
text's parsed document and its validation errors are kept in a bounded LRU cache. A document is never changed
by execution, and validation depends only on the document and the schema, so a cached answer is the one a
fresh parse would give.
"""
from __future__ import annotations

import functools
import hmac
import json
import re
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

from graphql import GraphQLError, GraphQLSchema, OperationType, execute, parse, specified_rules, validate
from graphql.language import DocumentNode, FieldNode, FragmentSpreadNode, InlineFragmentNode, OperationDefinitionNode
from graphql.utilities import get_operation_ast

from .console import log
from . import lazarus
from .context import RequestContext, run_after_commit
from .cors import Cors
from .depth import DepthLimitRule
from .hook_sender import HookSender
from .schema import prefect_query_names
from .services import Clock, Lazarus, Retention, Scheduler, ServiceLoop, ZombieKiller, wall_clock
from .store import Store

MAX_BODY = 10 * 1024 * 1024
_QUOTED_NAME = re.compile(r"'([_A-Za-z][_0-9A-Za-z]*)'")
MAX_BATCH = 100  # operations in one batched body; the UI's BatchHttpLink sends at most 25
VALIDATION_RULES = (*specified_rules, DepthLimitRule)
_DISCARD_LIMIT = 64 * 1024 * 1024  # read (and drop) at most this much of a too-big body before answering
PREPARED_CACHE = 512  # query texts whose parsed and validated documents are kept (module doc)
PREPARED_MAX_TEXT = 64 * 1024  # longer texts are parsed each time, so the cache stays within a few tens of MB


class Emulator:
    """Everything one emulator process serves: the schema, the store and the settings.

    Args:
        schema: the executable schema from schema.build()
        store: the tables
        api_key: when set, every GraphQL request must carry `Authorization: Bearer <api_key>`
        heartbeat_timeout: seconds without a flow run heartbeat after which the zombie killer retries or fails
            its Running task runs (and fails it if Cancelling)
        lazarus_interval: seconds between two Lazarus rounds (Server: 600)
        lazarus_stale_after: seconds since a run's last heartbeat after which Lazarus revives it (Server: 600)
        cors: the origins browsers may call from (default: where the stack publishes a UI)
        cloud_hooks: False: hooks are stored but never called (--no-cloud-hooks)
        hook_sender: where hook calls go (default: HTTP through worker threads; tests inject a recorder)
        clock: the instant the background services' rounds run at (the wall clock; tests inject their own)
        retain_days: days a finished run is kept after it ended (None: for ever; retention.py)
        retain_log_days: days a log line is kept (None: for ever)
    """

    def __init__(self, schema: GraphQLSchema, store: Store, api_key: Optional[str] = None,
                 heartbeat_timeout: float = 60.0, lazarus_interval: float = lazarus.INTERVAL_SECONDS,
                 lazarus_stale_after: float = lazarus.STALE_AFTER_SECONDS, cors: Optional[Cors] = None,
                 cloud_hooks: bool = True, hook_sender: Optional[HookSender] = None,
                 clock: Clock = wall_clock, retain_days: Optional[float] = None,
                 retain_log_days: Optional[float] = None) -> None:
        self.schema = schema
        self.cors = cors or Cors()
        self.hooks = hook_sender or HookSender(enabled=cloud_hooks)
        self.store = store
        self.api_key = api_key or None
        self.heartbeat_timeout = heartbeat_timeout
        self.lazarus_interval = lazarus_interval
        self.lazarus_stale_after = lazarus_stale_after
        self.zombie_killer = ZombieKiller(store, self.hooks, heartbeat_timeout)
        self.lazarus = Lazarus(store, self.hooks, lazarus_interval, lazarus_stale_after)
        self.scheduler = Scheduler(store, self.hooks)
        services = [self.zombie_killer, self.lazarus, self.scheduler]
        if retain_days or retain_log_days:
            services.append(Retention(store, retain_days, retain_log_days))
        self.services = ServiceLoop(services, clock)
        self._own_queries = set(prefect_query_names())
        self._stop = threading.Event()
        self._prepared = functools.lru_cache(maxsize=PREPARED_CACHE)(self._parse_and_validate)

    # --------------------------------------------------------------------------------------- GraphQL
    def run_request(self, body: Any, headers: Dict[str, str]) -> Tuple[int, Any]:
        """Answers a decoded body: one operation (an object) or Apollo's batch (an array of them).

        Returns:
            (HTTP status, JSON answer: an object, or an array of answers in the batch's order)
        """
        if not isinstance(body, list):
            return self.run_graphql(body, headers)
        if not body:
            return self._refuse_batch("An empty batch: send at least one operation, e.g. [{\"query\": \"...\"}].")
        if len(body) > MAX_BATCH:
            return self._refuse_batch(f"A batch of {len(body)} operations is over the limit of {MAX_BATCH}: "
                                      "send fewer operations per request (Apollo's BatchHttpLink: batchMax).")
        return 200, [self.run_graphql(operation, headers)[1] for operation in body]

    @staticmethod
    def _refuse_batch(message: str) -> Tuple[int, dict]:
        log("GRAPHQL " + json.dumps({"operation": None, "fields": [], "ok": False, "error": message, "ms": 0.0}))
        return 400, _errors(message)

    def run_graphql(self, body: Any, headers: Dict[str, str]) -> Tuple[int, dict]:
        """Executes one decoded request body and logs one GRAPHQL line.

        Args:
            body: the decoded JSON body
            headers: request headers, names lower-cased

        Returns:
            (HTTP status, JSON answer)
        """
        started = time.perf_counter()
        operation_name: Optional[str] = None
        fields: List[str] = []
        status, answer = 200, {}
        try:
            query, variables, operation_name = _request_parts(body)
            authorized = self._authorized(headers)
            try:
                document, problems = self._prepare(query)
            except GraphQLError:
                if authorized:
                    raise
                document = None
            if document is not None:
                operation = get_operation_ast(document, operation_name)
                if operation is not None:
                    operation_name = operation.name.value if operation.name else operation_name
                    fields = _root_fields(operation, document)
            if not authorized:
                # HTTP 200 + code UNAUTHENTICATED, as Prefect Cloud answers: prefect's client turns it into
                # AuthorizationError, so `prefect auth login` prints "Unauthorized. Invalid ... API key."
                answer = _errors("Unauthorized: invalid or missing API key. Send the header "
                                 "'Authorization: Bearer <key>' with the key the emulator was started with "
                                 "(prefect auth login --key KEY, or PREFECT__CLOUD__API_KEY).",
                                 code="UNAUTHENTICATED")
            else:
                if problems:
                    answer = {"errors": [_as_graphql_js(e.formatted) for e in problems]}
                else:
                    answer = self._execute(document, variables, operation_name, headers)
        except _BadRequest as exc:
            answer = _errors(str(exc))
        except RecursionError:
            answer = _errors("The query is nested too deeply to parse: flatten it (Prefect's queries nest a few "
                             "levels only).")
        except GraphQLError as exc:  # syntax errors from parse()
            answer = {"errors": [exc.formatted]}
        except Exception as exc:  # a bug in the emulator: say so, keep the traceback in the log only
            log("EMULATOR-BUG " + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            answer = _errors(f"Internal emulator error ({type(exc).__name__}): {exc}")
        errors = answer.get("errors") or []
        log("GRAPHQL " + json.dumps({
            "operation": operation_name, "fields": fields, "ok": not errors,
            "error": errors[0].get("message") if errors else None,
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }))
        return status, answer

    def _prepare(self, query: str) -> Tuple[DocumentNode, Tuple[GraphQLError, ...]]:
        """The parsed document and its validation errors, from the cache when the text was seen (module doc).
        Raises GraphQLError on a syntax error (never cached: a bad text is answered afresh each time)."""
        if len(query) > PREPARED_MAX_TEXT:
            return self._parse_and_validate(query)
        return self._prepared(query)

    def _parse_and_validate(self, query: str) -> Tuple[DocumentNode, Tuple[GraphQLError, ...]]:
        document = parse(query)
        return document, tuple(validate(self.schema, document, VALIDATION_RULES))

    def _authorized(self, headers: Dict[str, str]) -> bool:
        if not self.api_key:
            return True
        given = headers.get("authorization", "")
        expected = f"Bearer {self.api_key}"
        return hmac.compare_digest(given.encode(), expected.encode())

    def _execute(self, document: Any, variables: Optional[dict], operation_name: Optional[str],
                 headers: Dict[str, str]) -> dict:
        ctx = RequestContext(self.store, tenant_id=headers.get("x-prefect-tenant-id"),
                             core_version=headers.get("x-prefect-core-version"),
                             agent_id=headers.get("x-prefect-agent-id"), hooks=self.hooks)
        # the store's lock around the whole operation: a mutation's checks and writes are atomic and no query
        # sees half of them; table queries hold it shared, so they run side by side. Server's own queries run
        # in a transaction like its mutations (auth_info may create the first tenant): they are cheap
        operation = get_operation_ast(document, operation_name)
        writes = operation is None or operation.operation == OperationType.MUTATION or any(
            field in self._own_queries for field in _root_fields(operation, document))
        with self.store.writing() if writes else self.store.reading():
            result = execute(self.schema, document, variable_values=variables, operation_name=operation_name,
                             context_value=ctx)
        run_after_commit(ctx)  # cloud hook calls: queued now, made by the hook workers
        answer: Dict[str, Any] = {"data": result.data}
        if result.errors:
            for error in result.errors:
                original = error.original_error
                # errors with a path come from resolvers; an exception that is not an ApiError is a bug
                if error.path and original is not None and not isinstance(original, GraphQLError):
                    log("EMULATOR-BUG " + "".join(traceback.format_exception(
                        type(original), original, original.__traceback__)))
            answer["errors"] = [e.formatted for e in result.errors]
        return answer

    # ------------------------------------------------------------------------------ background services
    def start_background_loop(self) -> threading.Thread:
        """Starts the thread that plays Server's services on the emulator's clock (services.py): the zombie
        killer, every min(1 s, timeout/4), retries or fails the Running task runs of flow runs whose heartbeat
        is older than the timeout and fails such Cancelling flow runs (see zombies.py); Lazarus, every
        `lazarus_interval` (first round at start, as Server's loop services do), reschedules stuck runs (see
        lazarus.py); the scheduler, every SCHEDULE_SECONDS, tops up the runs of flows with an active
        schedule."""
        return self.services.start(self._stop)

    def stop(self) -> None:
        self._stop.set()


class _BadRequest(Exception):
    """A body that is JSON but not a GraphQL request."""


def _errors(message: str, code: Optional[str] = None) -> dict:
    error: Dict[str, Any] = {"message": message}
    if code:
        error["extensions"] = {"code": code}
    return {"errors": [error]}


def _as_graphql_js(error: dict) -> dict:
    """A validation error worded as graphql-js (Server's Apollo) words it: names in double quotes, where
    graphql-core puts single ones ("Cannot query field "x" on type "Mutation"." for a Cloud-only mutation)."""
    message = error.get("message", "")
    if message.startswith(("Cannot query field ", "Unknown argument ", "Unknown type ")):
        error = dict(error, message=_QUOTED_NAME.sub(r'"\1"', message))
    return error


def _request_parts(body: Any) -> Tuple[str, Optional[dict], Optional[str]]:
    if not isinstance(body, dict):
        raise _BadRequest("Each operation must be a JSON object with a 'query' string (a batch: an array of "
                          f"them), got {type(body).__name__}.")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _BadRequest("Missing 'query': send {\"query\": \"{ ... }\", \"variables\": {...}}.")
    variables = body.get("variables")
    if isinstance(variables, str):  # prefect's client sends json.dumps(variables)
        try:
            variables = json.loads(variables) if variables.strip() else None
        except ValueError as exc:
            raise _BadRequest(f"'variables' is a string but not valid JSON: {exc}")
    if variables is not None and not isinstance(variables, dict):
        raise _BadRequest(f"'variables' must be a JSON object, got {type(variables).__name__}.")
    name = body.get("operationName")
    if name is not None and not isinstance(name, str):
        raise _BadRequest("'operationName' must be a string or null.")
    return query, variables, name


def _root_fields(operation: OperationDefinitionNode, document: Any) -> List[str]:
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    names: List[str] = []

    def walk(selection_set: Any, depth: int) -> None:
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.name.value not in names:
                    names.append(sel.name.value)
            elif isinstance(sel, InlineFragmentNode) and depth < 10:
                walk(sel.selection_set, depth + 1)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments and depth < 10:
                walk(fragments[sel.name.value].selection_set, depth + 1)

    walk(operation.selection_set, 0)
    return names


class Handler(BaseHTTPRequestHandler):
    """One HTTP request. `server.emulator` is the Emulator being served."""

    server_version = "PrefectServerEmulator/1.4.1"
    # keep-alive, as Server's Apollo and Hasura answer: a browser's or a Session's next request reuses the
    # connection. Every answer carries its Content-Length, and an answer sent before its request's body was read
    # closes the connection (close_connection), so no unread body is ever taken for the next request
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: an answer goes out as two writes (headers, then body), and on a kept-alive connection Nagle's
    # algorithm holds the body until the client ACKs the headers, which it delays by up to 40 ms
    disable_nagle_algorithm = True
    # a client that stops sending mid-request frees its thread after this many seconds instead of holding it
    timeout = 60
    error_content_type = "application/json"
    error_message_format = '{"errors": [{"message": "%(code)d %(message)s"}]}'

    def log_message(self, format: str, *args: Any) -> None:
        # the GRAPHQL lines are the request log; http.server's access lines would only add noise
        pass

    def end_headers(self) -> None:
        # every answer carries the CORS headers, errors included (also http.server's own, such as a 501 for an
        # unknown method), so that a browser page can read why its request failed
        headers = getattr(self, "headers", None)
        origin = headers.get("Origin") if headers is not None else None
        for name, value in self.server.emulator.cors.headers(origin).items():  # type: ignore[attr-defined]
            self.send_header(name, value)
        super().end_headers()

    def do_OPTIONS(self) -> None:
        """A CORS preflight: the methods and headers the UI may send, for an allowed origin."""
        cors: Cors = self.server.emulator.cors  # type: ignore[attr-defined]
        origin = self.headers.get("Origin")
        if origin is not None and not cors.allows(origin):
            self._reject(403, cors.refusal(origin))
            return
        self.send_response(204)
        for name, value in cors.preflight_headers(origin).items():
            if name not in cors.headers(origin):  # end_headers adds those
                self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.headers.get("Content-Length", "0") != "0":
            self.close_connection = True  # a GET's body is never read
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/health", "/.well-known/apollo/server-health"):
            self._send(200, {"status": "ok", "emulates": "prefect-server core-1.4.1"})
        elif path in ("", "/graphql"):
            self._send(405, _errors("GraphQL is served with POST: send {\"query\": ...} as a JSON body."))
        else:
            self._send(404, _errors(f"No such path {path!r}: use POST / (GraphQL) or GET /health."))

    def do_POST(self) -> None:
        emulator: Emulator = self.server.emulator  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("", "/graphql"):
            self.close_connection = True  # its body is not read
            self._send(404, _errors(f"No such path {path!r}: GraphQL is at POST / and POST /graphql."))
            return
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header is not None else -1
        except ValueError:
            length = -2
        if length < 0:
            self.close_connection = True
            message = ("Content-Length is required" if length_header is None else
                       f"Content-Length {length_header!r} is not a valid length")
            self._reject(411 if length_header is None else 400, message + ": send the JSON body with its length.")
            return
        if length > MAX_BODY:
            self._discard(length)
            self.close_connection = True
            self._reject(413, f"Request body too large: {length} bytes, the limit is {MAX_BODY} bytes (10 MB). "
                              "Send smaller requests (e.g. fewer logs per write_run_logs).")
            return
        raw = self.rfile.read(length)
        origin = self.headers.get("Origin")
        if origin is not None and not emulator.cors.allows(origin):
            # a page of another site may POST a "simple" request, which has no preflight: refuse to run it
            self._reject(403, emulator.cors.refusal(origin))
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self._reject(400, f"Malformed JSON body: {exc}. Send {{\"query\": \"...\", \"variables\": {{...}}}}.")
            return
        except RecursionError:
            self._reject(400, "Malformed JSON body: nested too deeply to decode.")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, answer = emulator.run_request(body, headers)
        self._send(status, answer)

    def _reject(self, status: int, message: str) -> None:
        log("GRAPHQL " + json.dumps({"operation": None, "fields": [], "ok": False, "error": message, "ms": 0.0}))
        self._send(status, _errors(message))

    def _discard(self, length: int) -> None:
        # reading what the client is sending lets it receive the 413 instead of a reset connection
        remaining = min(length, _DISCARD_LIMIT)
        self.connection.settimeout(5)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the Emulator its handlers serve."""

    daemon_threads = True
    allow_reuse_address = True
    # many agents, flow runs and heartbeat processes connect at once; the default backlog of 5 drops some
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], emulator: Emulator) -> None:
        super().__init__(address, Handler)
        self.emulator = emulator
