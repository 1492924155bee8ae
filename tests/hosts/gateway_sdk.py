"""Drives a running `weft gateway` with the official OpenAI Python SDK, as any
application would, and prints what it saw as one JSON object for the Rust
test to check.

    python gateway_sdk.py BASE_URL TOKEN MODEL SESSION

BASE_URL is http://127.0.0.1:PORT/v1; TOKEN is the gateway's client token,
given as the SDK's api_key. Stateless turns send their history; session
turns send only the new message with the X-Clawft-Session header.
"""

import json
import sys

import openai


def streamed(client, **kwargs):
    """A streamed completion, read chunk by chunk."""
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    return {
        "content": "".join(texts),
        "chunks": len(chunks),
        "text_chunks": len(texts),
        "role": chunks[0].choices[0].delta.role if chunks else None,
        "finish": chunks[-1].choices[0].finish_reason if chunks else None,
        "object": chunks[0].object if chunks else None,
        "model": chunks[0].model if chunks else None,
        "ids": len({c.id for c in chunks}),
    }


def whole(client, **kwargs):
    """A completion in one piece."""
    reply = client.chat.completions.create(**kwargs)
    return {
        "content": reply.choices[0].message.content,
        "role": reply.choices[0].message.role,
        "finish": reply.choices[0].finish_reason,
        "object": reply.object,
        "model": reply.model,
    }


def refused(call):
    """Status, type and code of the APIStatusError a call raises."""
    try:
        call()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {
            "status": e.status_code,
            "class": type(e).__name__,
            "type": body.get("type"),
            "code": body.get("code"),
            "message": body.get("message"),
        }
    return None


def main():
    base_url, token, model, session = sys.argv[1:5]
    client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=60)
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "third"},
    ]
    seen = {
        "sdk": openai.__version__,
        "models": [m.id for m in client.models.list()],
        "stateless_whole": whole(client, model=model, messages=history),
        "stateless_streamed": streamed(client, model=model, messages=history),
        "session": [],
    }
    # A session: each call sends one message; the gateway keeps the rest.
    for i, stream in enumerate([False, True, True, False]):
        kwargs = {
            "model": model,
            "messages": [{"role": "user", "content": f"turn {i}"}],
            "extra_headers": {"X-Clawft-Session": session},
        }
        seen["session"].append(streamed(client, **kwargs) if stream else whole(client, **kwargs))
    wrong = openai.OpenAI(base_url=base_url, api_key="not-the-token", max_retries=0, timeout=60)
    seen["wrong_token"] = refused(lambda: wrong.models.list())
    seen["wrong_token_chat"] = refused(
        lambda: wrong.chat.completions.create(model=model, messages=history[-1:])
    )
    seen["bad_request"] = refused(
        lambda: client.chat.completions.create(model=model, messages=[])
    )
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
