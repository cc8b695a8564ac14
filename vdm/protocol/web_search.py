"""Anthropic's `web_search` server tool on providers with a search of their own (pure).

Claude Code's WebSearch tool sends `{"type": "web_search_20250305", "name": "web_search",
"max_uses": 8, "allowed_domains"?, "blocked_domains"?, "user_location"?}` and reads the answer's
`server_tool_use` / `web_search_tool_result` blocks and the text's citations. Anthropic runs
that tool itself; elsewhere vdm maps it to the provider's search (`ModelCaps.web_search`):

- OpenAI Responses: the `web_search` tool; each `web_search_call` output item (its
  `action.query`, and `action.sources` when `include` asks for
  `web_search_call.action.sources`) becomes a `server_tool_use` + `web_search_tool_result`
  pair, and `url_citation` annotations on `output_text` become `web_search_result_location`
  citations (developers.openai.com/api/docs/guides/tools-web-search).
- OpenRouter (Chat Completions): the `web` plugin, which searches once per request with the
  prompt and answers with `url_citation` annotations on the message (openrouter.ai/docs/
  guides/features/web-search; the beta `openrouter:web_search` server tool is its successor).
  The search is reported as one `server_tool_use` whose query is the last user text, then the
  cited pages as its results, after the text.
- native Gemini: the `googleSearch` tool (grounding); the answer's `groundingMetadata` gives
  the queries (`webSearchQueries`), the sources (`groundingChunks[].web`) and the text each
  supports (`groundingSupports`) (ai.google.dev/gemini-api/docs/google-search). It comes
  with the last chunk, after the text: the citations go on the open text block and the
  search blocks follow the text. Gemini refuses search beside function tools, so a request
  with both is sent without search.

OpenAI's search returns no page titles or ages, and nothing Anthropic could decrypt: a
result's `title` is its URL (or the title a citation gave it), `encrypted_content` and
`encrypted_index` are empty, `page_age` is null. `cited_text` is the span of the answer that
the provider marked as cited, the nearest it has to Anthropic's quoted source text.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from vdm.protocol.anthropic import MessagesRequest, TextBlock, Tool
from vdm.protocol.codec import Target
from vdm.protocol.translation import ClientTool

log = logging.getLogger(__name__)

#: `tools[].type` prefix of Anthropic's web search (`web_search_20250305`, `_20260209`, ...).
WEB_SEARCH_PREFIX = "web_search_"
#: The include that makes OpenAI list a search's sources in `action.sources`.
SOURCES_INCLUDE = "web_search_call.action.sources"


def web_search_tool(req: MessagesRequest) -> Tool | None:
    """The client's web search server tool, if it sent one."""
    for tool in req.tools or ():
        if (tool.type or "").startswith(WEB_SEARCH_PREFIX):
            return tool
    return None


#: (family, model, what) already logged: a missing search is said once per model.
_TOLD: set[tuple[str, str, str]] = set()


def tell_once(target: Target, what: str) -> None:
    """Log once per provider family and model that web search is not available there."""
    key = (target.family, target.model, what)
    if key not in _TOLD:
        _TOLD.add(key)
        log.warning("web search on %s (%s): %s", target.model, target.family, what)


#: The function standing in for the web search where the provider has none.
STUB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to search the web for"}},
    "required": ["query"],
}


def search_stub(req: MessagesRequest, target: Target) -> ClientTool | None:
    """The `web_search` function tool for a client web search the provider cannot run (and
    the note in `target` that its calls are to be answered), or None without one."""
    tool = web_search_tool(req)
    if tool is None:
        return None
    target.web_search_stub = True
    tell_once(target, "no search there: the model's web_search calls get an error result")
    return ClientTool("web_search", "Search the web.", STUB_SCHEMA)


def _options(tool: Tool) -> dict[str, Any]:
    return tool.model_extra or {}


# --- OpenAI Responses -------------------------------------------------------------------------


def responses_search_tool(tool: Tool) -> dict[str, Any]:
    """OpenAI's `web_search` tool for the client's: allowed domains become `filters`, the
    user's location is the same object; blocked domains and `max_uses` have no equivalent."""
    options = _options(tool)
    out: dict[str, Any] = {"type": "web_search"}
    allowed = options.get("allowed_domains")
    if isinstance(allowed, list) and allowed:
        out["filters"] = {"allowed_domains": [str(d) for d in allowed]}
    location = options.get("user_location")
    if isinstance(location, dict):
        keys = ("type", "city", "region", "country", "timezone")
        out["user_location"] = {k: location[k] for k in keys if location.get(k) is not None}
        out["user_location"].setdefault("type", "approximate")
    ignored = [k for k in ("blocked_domains", "max_uses") if options.get(k)]
    if ignored:
        log.debug("web_search %s: no OpenAI equivalent, not sent", ", ".join(ignored))
    return out


def server_tool_id(upstream_id: str) -> str:
    """An Anthropic-looking `srvtoolu_` id, stable for the provider's call id."""
    stem = upstream_id.split("_", 1)[-1] if "_" in upstream_id else upstream_id
    return "srvtoolu_" + (stem or "0")


def search_query(item: dict[str, Any]) -> str | None:
    """The query of a `web_search_call` item whose action is a search; None for the other
    actions (`open_page`, `find_in_page`), which are not searches."""
    action = item.get("action")
    if not isinstance(action, dict) or action.get("type", "search") != "search":
        return None
    query = action.get("query")
    if not isinstance(query, str) or not query:
        queries = action.get("queries")
        query = queries[0] if isinstance(queries, list) and queries else ""
    return str(query)


def search_results(item: dict[str, Any], titles: dict[str, str]) -> list[dict[str, Any]]:
    """The `web_search_result` entries for a call's `action.sources` (`titles`: a title per
    URL, from citations, where one is known)."""
    results = []
    for source in (item.get("action") or {}).get("sources") or ():
        url = source.get("url") if isinstance(source, dict) else None
        if isinstance(url, str) and url:
            results.append(
                {
                    "type": "web_search_result",
                    "url": url,
                    "title": titles.get(url) or source.get("title") or url,
                    "encrypted_content": "",
                    "page_age": None,
                }
            )
    return results


def search_blocks(
    call_id: str, query: str, results: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `server_tool_use` block of one search and its `web_search_tool_result`."""
    use = {
        "type": "server_tool_use",
        "id": call_id,
        "name": "web_search",
        "input": {"query": query},
    }
    result = {"type": "web_search_tool_result", "tool_use_id": call_id, "content": results}
    return use, result


def query_json(query: str) -> str:
    return json.dumps({"query": query}, ensure_ascii=False)


def url_citation(text: str, annotation: Any) -> dict[str, Any] | None:
    """The Anthropic citation for an OpenAI `url_citation` annotation on `text`."""
    if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
        return None
    url = annotation.get("url")
    if not isinstance(url, str) or not url:
        return None
    start, end = annotation.get("start_index"), annotation.get("end_index")
    cited = text[start:end] if isinstance(start, int) and isinstance(end, int) else ""
    return {
        "type": "web_search_result_location",
        "url": url,
        "title": str(annotation.get("title") or url),
        "cited_text": cited,
        "encrypted_index": "",
    }


def citation_titles(output: Any) -> dict[str, str]:
    """URL -> title from the `url_citation` annotations of a response's messages."""
    titles: dict[str, str] = {}
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        for part in item.get("content") or ():
            for note in (part.get("annotations") or ()) if isinstance(part, dict) else ():
                if isinstance(note, dict) and note.get("url") and note.get("title"):
                    titles.setdefault(str(note["url"]), str(note["title"]))
    return titles


def new_server_tool_id() -> str:
    return "srvtoolu_" + uuid.uuid4().hex[:24]


# --- native Gemini ----------------------------------------------------------------------------


def _web_chunks(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    chunks = metadata.get("groundingChunks")
    out = []
    for chunk in chunks if isinstance(chunks, list) else ():
        web = chunk.get("web") if isinstance(chunk, dict) else None
        out.append(web if isinstance(web, dict) else {})
    return out


def gemini_queries(metadata: dict[str, Any]) -> list[str]:
    """The searches Google ran (`webSearchQueries`)."""
    queries = metadata.get("webSearchQueries")
    return [str(q) for q in queries if q] if isinstance(queries, list) else []


def gemini_results(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The sources (`groundingChunks[].web`) as `web_search_result`s; the URL is Google's
    redirect to the page, the title its site, as Gemini gives them."""
    results = []
    for web in _web_chunks(metadata):
        url = web.get("uri")
        if isinstance(url, str) and url:
            results.append(
                {
                    "type": "web_search_result",
                    "url": url,
                    "title": str(web.get("title") or url),
                    "encrypted_content": "",
                    "page_age": None,
                }
            )
    return results


def gemini_citations(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """A citation per source of each supported text segment (`groundingSupports`)."""
    chunks = _web_chunks(metadata)
    citations = []
    supports = metadata.get("groundingSupports")
    for support in supports if isinstance(supports, list) else ():
        if not isinstance(support, dict):
            continue
        segment = support.get("segment") or {}
        cited = str(segment.get("text") or "") if isinstance(segment, dict) else ""
        for i in support.get("groundingChunkIndices") or ():
            web = chunks[i] if isinstance(i, int) and 0 <= i < len(chunks) else {}
            url = web.get("uri")
            if isinstance(url, str) and url:
                citations.append(
                    {
                        "type": "web_search_result_location",
                        "url": url,
                        "title": str(web.get("title") or url),
                        "cited_text": cited,
                        "encrypted_index": "",
                    }
                )
    return citations


# --- OpenRouter (Chat Completions) ------------------------------------------------------------


def openrouter_web_plugin(tool: Tool) -> dict[str, Any]:
    """OpenRouter's `web` plugin for the client's web search (the plugin runs once, so
    `max_uses` has nothing to limit; domains have no equivalent on the plugin)."""
    ignored = [k for k in ("allowed_domains", "blocked_domains") if _options(tool).get(k)]
    if ignored:
        log.debug("web_search %s: no OpenRouter plugin equivalent", ", ".join(ignored))
    return {"id": "web"}


def last_user_text(req: MessagesRequest) -> str:
    """The text of the last user message: what a request-wide search looks for."""
    for message in reversed(req.messages):
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            return message.content
        texts = [b.text for b in message.content if isinstance(b, TextBlock)]
        if texts:
            return "\n".join(texts)
    return ""


def chat_annotation(annotation: Any) -> dict[str, Any] | None:
    """The Anthropic citation for a Chat `url_citation` annotation (`{"type": "url_citation",
    "url_citation": {url, title, content?, start_index, end_index}}`); the page excerpt
    (`content`) where OpenRouter gives one is the cited text."""
    if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
        return None
    cited = annotation.get("url_citation")
    if not isinstance(cited, dict) or not isinstance(cited.get("url"), str):
        return None
    url = cited["url"]
    return {
        "type": "web_search_result_location",
        "url": url,
        "title": str(cited.get("title") or url),
        "cited_text": str(cited.get("content") or ""),
        "encrypted_index": "",
    }


def results_of(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cited pages, once each, as `web_search_result`s."""
    seen: dict[str, dict[str, Any]] = {}
    for c in citations:
        seen.setdefault(
            c["url"],
            {
                "type": "web_search_result",
                "url": c["url"],
                "title": c["title"],
                "encrypted_content": "",
                "page_age": None,
            },
        )
    return list(seen.values())
