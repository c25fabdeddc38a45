"""The LangChain callback handler: LangChain / LangGraph runs → GenAI semconv spans.

Which runs become which spans (what the mapping reads):

* chat models / LLMs → ``chat`` / ``text_completion`` spans with input and output
  messages, usage, model and finish reason;
* tools → ``execute_tool`` spans (tool call id, arguments, result);
* retrievers → ``convotel.message_type`` ``retrieval`` (query in, documents out);
* the outermost LangGraph graph (or ``AgentExecutor``) → ``workflow``; graphs and
  agents inside it → ``task``; at the verbose level graph nodes are ``task`` and
  other chains ``chain_start``/``chain_end``; otherwise plain chains make no span
  (a top-level run always gets one, so the whole run shares one trace);
* ``on_text`` and agent-action logs → ``thought``; custom events → ``callback``.

Every span inside a workflow/task carries ``convotel.parent_span_id`` of that run.
While a LangGraph node runs, :func:`convotel.instrumentation.enter_run` makes
lower-level instrumentors (OpenAI) thread their spans the same way; while a chat
model runs, :func:`convotel.instrumentation.enter_model_call` marks the OpenAI
span of the same call as covered, so the call is reported once.

A graph is only recognisable as one when its first node starts (LangGraph passes
no ``serialized`` for graphs), so chain spans are created lazily: when the first
child starts, or when the run ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from convotel import semconv
from convotel.context import Claim, ConversationContext, current, push, release
from convotel.instrumentation import (
    capture_content,
    conversation_attributes,
    enter_model_call,
    enter_run,
    env_flag,
    json_attr,
    report_fault,
)
from convotel.instrumentation import record_failure as _fail

from . import _messages as msgs
from . import _scopes as scopes
from .package import TRACER_NAME
from .version import __version__

logger = logging.getLogger("convotel_langchain")

_NODE_TAG = "graph:step:"
#: LangGraph control-flow exceptions: a pause or a jump, not a failure.
_CONTROL_FLOW = frozenset({"GraphInterrupt", "GraphBubbleUp", "NodeInterrupt", "ParentCommand", "GraphRecursionError"})
_CONVERSATION_KEYS = ("thread_id", "conversation_id", "session_id")
_USER_KEYS = ("user_id", "userId")
_ORG_KEYS = ("organization_id", "org_id")
_DEFAULT_MAX_RUNS = 100_000
_MODEL_PARAMS = (("temperature", "gen_ai.request.temperature"), ("max_tokens", "gen_ai.request.max_tokens"))

def _report(where: str) -> None:
    report_fault(logger, where, "the run")


def _hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def _first(md: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` with a truthy value in ``md``, as a string."""
    for key in keys:
        value = md.get(key)
        if value:
            return str(value)
    return None


def _is_node(tags: list[str] | None) -> bool:
    """LangGraph tags a graph node's run ``graph:step:N``."""
    if tags:
        for tag in tags:
            if tag.startswith(_NODE_TAG):
                return True
    return False


def _given_name(explicit: Any, serialized: Any, default: str) -> Any:
    """A run's name: LangChain's ``name``, else the serialized object's, else ``default``."""
    return explicit or (serialized.get("name") if isinstance(serialized, Mapping) else None) or default


class _Run:
    """What the handler knows about one active run; dropped when the run ends.

    Most runs are plain chains that never change most of these: the defaults live on the
    class, and a new run sets only what it inherits from its parent.
    """

    start_ns = 0
    span: Span | None = None
    #: the OTel context this run made current (its own span's), reused to start children in
    ctx: otel_context.Context | None = None
    #: structural message type of this run's span (workflow, task, chain_start) or None
    kind: str | None = None
    graph = False
    #: whether its spans are expected to record: what its trace's first span did, which the samplers
    #: of the spans inside mostly follow (a parent-based sampler always does)
    recording = True
    #: (the OTel context it replaced, the one it made current): the first is put back when it ends
    entered: tuple[otel_context.Context, otel_context.Context] | None = None
    pending_prompt: tuple[tuple[str, ...], str] | None = None
    prompt_templates: list[tuple[str, list[str]]] | None = None
    inputs: Any = None

    def __init__(self, parent: _Run | None, name: str) -> None:
        self.parent = parent
        self.name = name
        #: claims it holds (structural run, model call, conversation), released when it ends
        self.claims: list[Claim] = []
        if parent is None:
            self.agent: _Run | None = None
            self.struct_id: str | None = None
            self.parent_struct: str | None = None
            self.conv: dict[str, Any] = {}
            self.capture = True
        else:
            #: nearest agent run (graph or AgentExecutor) at or above this one
            self.agent = parent.agent
            #: span id of the nearest structural run at or above this one (what children thread under);
            #: ``parent_struct`` is this run's own structural parent (its span's ``convotel.parent_span_id``)
            self.struct_id = self.parent_struct = parent.struct_id
            self.conv = parent.conv
            self.capture = parent.capture
            self.recording = parent.recording

    def span_parent(self) -> Span | None:
        run: _Run | None = self
        while run is not None:
            if run.span is not None:
                return run.span
            run = run.parent
        return None


def _leave(run: _Run) -> None:
    """Put back what ``run`` made current; safe from any context (claims release, OTel is checked)."""
    if run.entered is not None:
        scopes.OTEL.leave(*run.entered)
        run.entered = None
    if run.claims:
        for claim in run.claims:
            release(claim)
        run.claims.clear()


class CallbackHandler(BaseCallbackHandler):
    """Turns LangChain and LangGraph runs into convotel spans.

    Pass it explicitly (``config={"callbacks": [CallbackHandler()]}``) or let
    :class:`convotel_langchain.LangChainInstrumentor` add it to every run.

    ``verbose`` (default: ``CONVOTEL_VERBOSE``) also records graph nodes as
    ``task`` and other chains as ``chain_start``/``chain_end``;
    ``capture_content`` overrides convotel's content switch for this handler.
    """

    run_inline = True  # async runs call it in the caller's context (context variables stick)
    raise_error = False

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        verbose: bool | None = None,
        capture_content: bool | None = None,
        max_active_runs: int = _DEFAULT_MAX_RUNS,
    ) -> None:
        super().__init__()
        self._tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)
        self.verbose = env_flag("CONVOTEL_VERBOSE") is True if verbose is None else verbose
        self._capture = capture_content
        #: active runs by ``run_id.int``: a UUID hashes in Python code (``UUID.__hash__``), its int in C
        self._runs: dict[int, _Run] = {}
        self._max_runs = max_active_runs
        self._lock = threading.RLock()

    # -- bookkeeping ------------------------------------------------------------------------
    def _default_capture(self) -> bool:
        return capture_content() if self._capture is None else self._capture

    @property
    def active_runs(self) -> int:
        """Runs started and not yet ended (for tests and diagnostics)."""
        return len(self._runs)

    def _owner(self, run_id: UUID | None) -> _Run | None:
        return self._runs.get(run_id.int) if run_id is not None else None

    def _new_run(self, run_id: UUID, parent: _Run | None, name: str, metadata: Mapping[str, Any] | None) -> _Run:
        if parent is not None and parent.span is None:
            self._materialize(parent)  # if its kind is known, it must exist before its first child
        run = _Run(parent, name)
        if parent is None:
            run.capture = self._default_capture()
            run.conv = self._conversation(metadata)
        if len(self._runs) >= self._max_runs:
            self._evict()
        self._runs[run_id.int] = run
        return run

    def _evict(self) -> None:
        """Too many runs never ended (abandoned streams): forget the oldest."""
        try:
            oldest = next(iter(self._runs))
        except (StopIteration, RuntimeError):
            return
        run = self._runs.pop(oldest, None)
        if run is not None:
            _leave(run)
            if run.span is not None:
                run.span.end()

    def _conversation(self, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        """Conversation attributes of a top-level run: explicit context, then LangGraph thread / metadata."""
        ctx = current()
        if ctx is None and not metadata:
            return {}
        md = metadata or {}
        conv_id = ctx.conversation_id if ctx is not None else None
        if not conv_id:
            conv_id = _first(md, _CONVERSATION_KEYS)
        user_id = (ctx.user_id if ctx is not None else None) or _first(md, _USER_KEYS)
        org_id = (ctx.organization_id if ctx is not None else None) or _first(md, _ORG_KEYS)
        properties = ctx.properties if ctx is not None else None
        return conversation_attributes(ConversationContext(conv_id, user_id, org_id, properties))

    def _push_conversation(self, run: _Run) -> None:
        """Make the run's conversation current, so other instrumentors' spans inside share it (async
        runs do not make their spans current: those spans may be in other traces). Without one given,
        the conversation is the run's trace, which the mapping reads off a span that names none: the
        run's own spans need not carry it."""
        conv = run.conv
        ctx = current()
        conv_id = conv.get(semconv.CONVERSATION_ID)
        if conv_id is None and run.span is not None:
            trace_id = run.span.get_span_context().trace_id
            if trace_id:
                conv_id = format(trace_id, "032x")
        user_id = conv.get(semconv.USER_ID)
        org_id = conv.get(semconv.ORGANIZATION_ID)
        if ctx is None and conv_id is None and user_id is None and org_id is None:
            return
        if ctx is not None and (ctx.conversation_id, ctx.user_id, ctx.organization_id) == (conv_id, user_id, org_id):
            return
        merged = ConversationContext(conv_id, user_id, org_id, ctx.properties if ctx is not None else None)
        run.claims.append(push(merged))

    @staticmethod
    def _attach(run: _Run, span: Span, current: otel_context.Context) -> None:
        """Make ``span`` current (in place of ``current``, the current context) for code inside the run;
        synchronous runs only: see ``_scopes``."""
        if not scopes.in_event_loop():
            ctx = trace.set_span_in_context(span, current)
            if span is run.span:
                run.ctx = ctx
            otel_context.attach(ctx)
            run.entered = (current, ctx)

    def _start_span(self, run: _Run, name: str, attrs: dict[str, Any], *, kind: SpanKind = SpanKind.INTERNAL,
                    start_ns: int | None = None, attach: bool = False) -> Span:
        """Start ``run``'s span under its nearest ancestor's (in the context that ancestor made current
        when that still is: nothing to build); ``attach`` makes it current (:meth:`_attach`)."""
        if run.parent_struct is not None:
            attrs[semconv.STRUCTURAL_PARENT] = run.parent_struct
        attrs.update(run.conv)
        current = otel_context.get_current()
        holder = run.parent
        while holder is not None and holder.span is None:
            holder = holder.parent
        if holder is None or holder.ctx is current:
            parent = current
        else:
            parent = trace.set_span_in_context(holder.span, current)  # type: ignore[arg-type]
        span = self._tracer.start_span(name, context=parent, kind=kind, attributes=attrs, start_time=start_ns)
        run.span = span
        if holder is None:
            run.recording = span.is_recording()
        if attach:
            self._attach(run, span, current)
        return span

    def _structural_span(self, run: _Run, kind: str, start_ns: int | None = None, attach: bool = False) -> Span:
        run.kind = kind
        attrs: dict[str, Any] = {semconv.MESSAGE_TYPE: kind}
        name = run.name
        if kind in ("workflow", "task"):  # a graph run is always one of these by now
            attrs[semconv.OPERATION_NAME] = semconv.OP_INVOKE_AGENT
            attrs[semconv.AGENT_NAME] = name
            name = f"invoke_agent {name}"
        if run.capture and run.inputs is not None and kind == "chain_start":
            attrs[semconv.INPUT_VALUE] = json_attr(run.inputs)
        span = self._start_span(run, name, attrs, start_ns=start_ns, attach=attach)
        run.struct_id = _hex_span_id(span)
        return span

    def _materialize(self, run: _Run | None) -> None:
        """Create the span of a run whose kind became known after it started (and its parent's
        first, if that one waits too); nothing for a run with a span or no kind yet."""
        if run is None or run.span is not None or run.kind is None:
            return  # the common case, decided without the lock
        with self._lock:
            if run.span is not None or run.kind is None:
                return
            self._materialize(run.parent)
            self._structural_span(run, run.kind, start_ns=run.start_ns)

    def _promote_graph(self, graph: _Run) -> None:
        """``graph``'s first child is a LangGraph node: it is a graph (an agent) run."""
        with self._lock:
            if graph.graph:
                return
            graph.graph = True
            kind = "task" if graph.agent is not None else "workflow"
            graph.agent = graph
            if graph.span is None:
                graph.kind = kind
            elif graph.kind is None:
                # A top-level run LangGraph did not mark: label it now (announced at its end only).
                graph.kind = kind
                graph.span.set_attributes({semconv.MESSAGE_TYPE: kind, semconv.OPERATION_NAME: semconv.OP_INVOKE_AGENT,
                                           semconv.AGENT_NAME: graph.name})
                graph.struct_id = _hex_span_id(graph.span)
        self._materialize(graph)

    # -- the one way runs start and end ------------------------------------------------------
    def _start(self, where: str, run_id: UUID, parent_run_id: UUID | None, metadata: Mapping[str, Any] | None,
               name: Any, describe: Callable[..., tuple[str, dict[str, Any], SpanKind]], *args: Any) -> None:
        """Start a model, tool or retriever run: ``describe(run, content, *args)`` gives its span's name,
        attributes (those of its content, the costly ones, only if ``content``) and kind. The span is
        current while the run runs; a model call also claims the OpenAI call it makes."""
        try:
            run = self._new_run(run_id, self._owner(parent_run_id), str(name), metadata)
            span_name, attrs, kind = describe(run, run.recording, *args)
            span = self._start_span(run, span_name, attrs, kind=kind, attach=True)
            if not run.recording and span.is_recording():  # a sampler that records what its trace does not
                span.set_attributes(describe(run, True, *args)[1])
            if kind is SpanKind.CLIENT:
                # The OpenAI client call this model makes is the same logical event: mark it covered.
                run.claims.append(enter_model_call(_hex_span_id(span)))
        except Exception:
            _report(where)

    def _end(self, where: str, run_id: UUID, value: Any, record: Callable[[_Run, Span, Any], None], *,
             remember_prompt: bool = False) -> None:
        """End a run: put back what it made current, ``record(run, span, value)`` on its (recording) span,
        end the span."""
        try:
            run = self._runs.pop(run_id.int, None)
            if run is None:
                return
            _leave(run)
            if remember_prompt and run.prompt_templates is not None and run.parent is not None:
                self._remember_prompt(run, value)
            span = run.span
            if span is None:
                self._materialize(run)  # a chain whose kind became known late gets its span now
                span = run.span
                if span is None:
                    return
            if span.is_recording():
                record(run, span, value)
            span.end()
        except Exception:
            _report(where)

    # -- chains, graphs, agents -----------------------------------------------------------------
    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, tags: list[str] | None = None,
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        try:
            self._chain_start(serialized, inputs, run_id, parent_run_id, tags, metadata, kwargs.get("name"))
        except Exception:
            _report("on_chain_start")

    def _chain_start(self, serialized: Any, inputs: Any, run_id: UUID, parent_run_id: UUID | None,
                     tags: list[str] | None, metadata: dict[str, Any] | None, name: Any) -> None:
        if not name and isinstance(serialized, Mapping):
            name = serialized.get("name") or (serialized.get("id") or ["chain"])[-1]
        name = str(name or "chain")
        node = _is_node(tags)
        parent = self._owner(parent_run_id)
        if node and parent is not None and not parent.graph:
            self._promote_graph(parent)
        run = self._new_run(run_id, parent, name, metadata)
        if serialized is not None and run.capture:
            templates = msgs.system_templates(serialized)
            if templates:
                run.prompt_templates = templates
                run.inputs = inputs
        if parent is None:
            md = metadata or {}
            graph = md.get("ls_integration") == "langgraph" and "langgraph_node" not in md
            if graph or name == "AgentExecutor":
                run.graph = graph
                run.agent = run
                self._structural_span(run, "workflow", attach=True)
            elif self.verbose:
                if run.capture:
                    run.inputs = inputs
                self._structural_span(run, "chain_start", attach=True)
            else:
                self._start_span(run, name, {}, attach=True)
            self._push_conversation(run)
            if run.kind is not None:
                run.claims.append(enter_run(run.struct_id))  # type: ignore[arg-type]
            return
        if name == "AgentExecutor":
            kind = "task" if run.agent is not None else "workflow"
            run.agent = run
            self._structural_span(run, kind)
        elif self.verbose:
            run.start_ns = time.time_ns()
            if node:
                self._structural_span(run, "task")
            else:
                if run.capture and run.inputs is None:
                    run.inputs = inputs
                run.kind = "chain_start"  # created when a child starts or the run ends
        else:
            run.start_ns = time.time_ns()
        if node:
            # Code inside the node (an OpenAI call, a store access) threads under the node's run.
            if run.struct_id is not None:
                run.claims.append(enter_run(run.struct_id))
            span = run.span_parent()
            if span is not None:
                self._attach(run, span, otel_context.get_current())

    def _remember_prompt(self, run: _Run, outputs: Any) -> None:
        """A ``ChatPromptTemplate`` ran: its parent keeps the rendered system texts and the
        ``systemPrompt`` they came from, for the model call that follows (:meth:`_prompt_for`)."""
        rendered = msgs.rendered_system_texts(outputs)
        if rendered is not None:
            prompt = msgs.system_prompt(run.prompt_templates, run.inputs)  # type: ignore[arg-type]
            run.parent.pending_prompt = (rendered, json_attr(prompt))  # type: ignore[union-attr]

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end("on_chain_end", run_id, outputs, _chain_outputs, remember_prompt=True)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end("on_chain_error", run_id, error, _chain_failure)

    # -- model calls ----------------------------------------------------------------------------
    def on_chat_model_start(self, serialized: dict[str, Any] | None, messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start("on_chat_model_start", run_id, parent_run_id, metadata, "chat", _chat_span, messages, metadata,
                    kwargs)

    def on_llm_start(self, serialized: dict[str, Any] | None, prompts: list[str], *, run_id: UUID,
                     parent_run_id: UUID | None = None, tags: list[str] | None = None,
                     metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start("on_llm_start", run_id, parent_run_id, metadata, "llm", _completion_span, prompts, metadata,
                    kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end("on_llm_end", run_id, response, _response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end("on_llm_error", run_id, error, _failure)

    # -- tools ----------------------------------------------------------------------------------
    def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID,
                      parent_run_id: UUID | None = None, tags: list[str] | None = None,
                      metadata: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None,
                      **kwargs: Any) -> None:
        self._start("on_tool_start", run_id, parent_run_id, metadata,
                    _given_name(kwargs.get("name"), serialized, "tool"), _tool_span, serialized, input_str, inputs,
                    kwargs.get("tool_call_id"))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end("on_tool_end", run_id, output, _tool_output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end("on_tool_error", run_id, error, _failure)

    # -- retrievers -----------------------------------------------------------------------------
    def on_retriever_start(self, serialized: dict[str, Any] | None, query: str, *, run_id: UUID,
                           parent_run_id: UUID | None = None, tags: list[str] | None = None,
                           metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._start("on_retriever_start", run_id, parent_run_id, metadata,
                    _given_name(kwargs.get("name"), serialized, "retriever"), _retriever_span, query)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        self._end("on_retriever_end", run_id, documents, _documents)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end("on_retriever_error", run_id, error, _failure)

    # -- point events: thoughts, custom events, retries --------------------------------------------
    def _event_span(self, owner: _Run | None, name: str, attrs: dict[str, Any]) -> None:
        """A span for an instantaneous event inside ``owner`` (thread, conversation, trace from it)."""
        self._materialize(owner)
        probe = _Run(owner, name)
        if owner is None:
            probe.capture = self._default_capture()
            probe.conv = self._conversation(None)
        self._start_span(probe, name, attrs).end()

    def _thought(self, run_id: UUID | None, text: str) -> None:
        owner = self._owner(run_id)
        capture = owner.capture if owner is not None else self._default_capture()
        attrs: dict[str, Any] = {semconv.MESSAGE_TYPE: "thought"}
        if capture:
            attrs[semconv.CONTENT] = text
        self._event_span(owner, "thought", attrs)

    def on_text(self, text: str, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        try:
            if text and text.strip():
                self._thought(run_id, text)
        except Exception:
            _report("on_text")

    def on_agent_action(self, action: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        try:
            log = getattr(action, "log", None)
            if isinstance(log, str) and log.strip():
                self._thought(run_id, log.strip())
        except Exception:
            _report("on_agent_action")

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, tags: list[str] | None = None,
                        metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        try:
            owner = self._owner(run_id)
            capture = owner.capture if owner is not None else self._default_capture()
            attrs: dict[str, Any] = {semconv.MESSAGE_TYPE: "callback"}
            if capture and data is not None:
                attrs[semconv.INPUT_VALUE] = json_attr(_plain(data))
            self._event_span(owner, str(name), attrs)
        except Exception:
            _report("on_custom_event")

    def on_retry(self, retry_state: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        try:
            run = self._owner(run_id)
            span = run.span_parent() if run is not None else None
            if span is not None and span.is_recording():
                attempt = getattr(retry_state, "attempt_number", None)
                outcome = getattr(retry_state, "outcome", None)
                error = outcome.exception() if outcome is not None and outcome.failed else None
                attrs: dict[str, Any] = {}
                if isinstance(attempt, int):
                    attrs["retry.attempt"] = attempt
                if error is not None:
                    attrs[semconv.ERROR_TYPE] = type(error).__qualname__
                span.add_event("retry", attrs)
        except Exception:
            _report("on_retry")


# -- what a run's span says when it starts ---------------------------------------------------------
def _model_attributes(operation: str, metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {semconv.OPERATION_NAME: operation}
    params = kwargs.get("invocation_params") or {}
    md = metadata or {}
    model = params.get("model") or params.get("model_name") or md.get("ls_model_name")
    if isinstance(model, str) and model:
        attrs[semconv.REQUEST_MODEL] = model
    provider = md.get("ls_provider")
    if isinstance(provider, str) and provider:
        attrs[semconv.PROVIDER_NAME] = provider
    for key, attr in _MODEL_PARAMS:
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[attr] = value
    n = params.get("n")
    if isinstance(n, int) and n > 1:
        attrs[semconv.REQUEST_CHOICE_COUNT] = n
    return attrs


def _model_span_name(attrs: Mapping[str, Any]) -> str:
    model = attrs.get(semconv.REQUEST_MODEL)
    operation = attrs[semconv.OPERATION_NAME]
    return f"{operation} {model}" if model else operation


def _chat_span(run: _Run, content: bool, messages: list[list[Any]], metadata: Mapping[str, Any] | None,
               kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any], SpanKind]:
    attrs = _model_attributes(semconv.OP_CHAT, metadata, kwargs)
    if content:
        system, system_texts, entries = msgs.input_messages(messages[0] if messages else [], run.capture)
        attrs[semconv.INPUT_MESSAGES] = json_attr(entries)
        if system is not None:
            attrs[semconv.SYSTEM_INSTRUCTIONS] = json_attr(system)
            prompt = _prompt_for(run, tuple(system_texts)) if run.capture else None
            if prompt is not None:
                attrs[semconv.SYSTEM_PROMPT] = prompt
    return _model_span_name(attrs), attrs, SpanKind.CLIENT


def _completion_span(run: _Run, content: bool, prompts: list[str], metadata: Mapping[str, Any] | None,
                     kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any], SpanKind]:
    attrs = _model_attributes(semconv.OP_TEXT_COMPLETION, metadata, kwargs)
    if content:
        text = prompts[0] if prompts else ""
        part = {"type": "text", "content": text} if run.capture else {"type": "text"}
        attrs[semconv.INPUT_MESSAGES] = json_attr([{"role": "user", "parts": [part]}])
    return _model_span_name(attrs), attrs, SpanKind.CLIENT


def _prompt_for(run: _Run, system_texts: tuple[str, ...]) -> str | None:
    """The ``ChatPromptTemplate`` that rendered this call's system prompt, if it ran just before."""
    holder = run.parent
    for _ in range(3):
        if holder is None:
            return None
        pending = holder.pending_prompt
        if pending is not None and pending[0] == system_texts:
            return pending[1]
        holder = holder.parent
    return None


def _tool_span(run: _Run, content: bool, serialized: Any, input_str: str, inputs: Any,
               call_id: Any) -> tuple[str, dict[str, Any], SpanKind]:
    attrs: dict[str, Any] = {semconv.OPERATION_NAME: semconv.OP_EXECUTE_TOOL, semconv.TOOL_NAME: run.name}
    if isinstance(call_id, str) and call_id:
        attrs[semconv.TOOL_CALL_ID] = call_id
    if content and run.capture:
        attrs[semconv.TOOL_CALL_ARGUMENTS] = json_attr(inputs if inputs is not None else input_str)
        description = (serialized or {}).get("description")
        if isinstance(description, str) and description:
            attrs["gen_ai.tool.description"] = description
    return f"execute_tool {run.name}", attrs, SpanKind.INTERNAL


def _retriever_span(run: _Run, content: bool, query: str) -> tuple[str, dict[str, Any], SpanKind]:
    attrs: dict[str, Any] = {semconv.MESSAGE_TYPE: "retrieval"}
    if content and run.capture:
        attrs[semconv.INPUT_VALUE] = json_attr({"query": query})
    return run.name, attrs, SpanKind.INTERNAL


# -- what a run's (recording) span records when it ends --------------------------------------------
def _failure(run: _Run, span: Span, error: BaseException) -> None:
    _fail(span, error)


def _chain_failure(run: _Run, span: Span, error: BaseException) -> None:
    if not any(c.__name__ in _CONTROL_FLOW for c in type(error).__mro__):
        _fail(span, error)


def _chain_outputs(run: _Run, span: Span, outputs: Any) -> None:
    if run.kind == "chain_start" and run.capture:
        span.set_attribute(semconv.OUTPUT_VALUE, json_attr(outputs))


def _response(run: _Run, span: Span, response: Any) -> None:
    """Output messages, finish reasons, response model and id, token usage: one ``set_attributes``."""
    generations = getattr(response, "generations", None) or []
    choices = generations[0] if generations else []
    capture = run.capture
    attrs: dict[str, Any] = {}
    first = None
    if choices:
        outputs = []
        reasons = []
        for generation in choices:
            output = msgs.output_message(generation, capture)
            outputs.append(output)
            if output.get("finish_reason"):
                reasons.append(output["finish_reason"])
        attrs[semconv.OUTPUT_MESSAGES] = json_attr(outputs)
        if reasons:
            attrs[semconv.RESPONSE_FINISH_REASONS] = reasons
        agent = run.agent
        if agent is not None and agent.graph and msgs.is_text_only(choices[0]):
            # The answer that ends an agent run; a sub-agent's answer stays an assistant message.
            attrs[semconv.FINAL_RESPONSE] = agent.kind == "workflow"
        first = getattr(choices[0], "message", None)
    llm_output = getattr(response, "llm_output", None) or {}
    meta = getattr(first, "response_metadata", None) or {}
    model = meta.get("model_name") or meta.get("model") or llm_output.get("model_name")
    if isinstance(model, str) and model:
        attrs[semconv.RESPONSE_MODEL] = model
    response_id = meta.get("id") or llm_output.get("id")
    if isinstance(response_id, str) and response_id:
        attrs[semconv.RESPONSE_ID] = response_id
    usage = getattr(first, "usage_metadata", None)
    if usage:
        _usage(attrs, usage.get("input_tokens"), usage.get("output_tokens"))
        details = usage.get("output_token_details") or {}
        if isinstance(details.get("reasoning"), int):
            attrs[semconv.USAGE_REASONING_TOKENS] = details["reasoning"]
        cached = (usage.get("input_token_details") or {}).get("cache_read")
        if isinstance(cached, int):
            attrs[semconv.USAGE_CACHE_READ_INPUT_TOKENS] = cached
    else:
        token_usage = llm_output.get("token_usage") or llm_output.get("usage") or {}
        if isinstance(token_usage, Mapping):
            _usage(attrs, token_usage.get("prompt_tokens", token_usage.get("input_tokens")),
                   token_usage.get("completion_tokens", token_usage.get("output_tokens")))
    if attrs:
        span.set_attributes(attrs)


def _usage(attrs: dict[str, Any], input_tokens: Any, output_tokens: Any) -> None:
    if isinstance(input_tokens, int):
        attrs[semconv.USAGE_INPUT_TOKENS] = input_tokens
    if isinstance(output_tokens, int):
        attrs[semconv.USAGE_OUTPUT_TOKENS] = output_tokens


def _tool_output(run: _Run, span: Span, output: Any) -> None:
    message = _tool_message(output)
    if run.capture:
        content = getattr(message, "content", output) if message is not None else output
        result = content if isinstance(content, str) else json_attr(_plain(content))
        span.set_attribute(semconv.TOOL_CALL_RESULT, result)
    if message is not None and getattr(message, "status", None) == "error":
        span.set_attribute(semconv.ERROR_TYPE, "ToolError")
        span.set_status(Status(StatusCode.ERROR, msgs.content_text(getattr(message, "content", None))
                               if run.capture else "ToolError"))


def _documents(run: _Run, span: Span, documents: Sequence[Any]) -> None:
    if run.capture:
        span.set_attribute(semconv.OUTPUT_VALUE, json_attr({"documents": [_document(d) for d in documents]}))
    else:
        span.set_attribute(semconv.OUTPUT_VALUE, json_attr({"count": len(documents)}))


def _tool_message(output: Any) -> Any:
    """The ``ToolMessage`` a tool returned (directly or inside a LangGraph ``Command``)."""
    if getattr(output, "type", None) == "tool":
        return output
    update = getattr(output, "update", None)
    if isinstance(update, Mapping):
        for message in update.get("messages") or ():
            if getattr(message, "type", None) == "tool":
                return message
    return None


def _plain(value: Any) -> Any:
    """JSON-friendly view of LangChain objects (messages, documents, pydantic models)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:
            return str(value)
    return value


def _document(doc: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"content": getattr(doc, "page_content", str(doc))}
    metadata = getattr(doc, "metadata", None)
    if metadata:
        out["metadata"] = _plain(metadata)
    doc_id = getattr(doc, "id", None)
    if doc_id:
        out["id"] = str(doc_id)
    return out


__all__ = ["CallbackHandler", "TRACER_NAME"]
