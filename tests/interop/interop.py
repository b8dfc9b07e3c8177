#!/usr/bin/env python3
"""Interop checks against a running `switchboard serve`, with clients nobody here wrote:
Python `websockets`, `curl -N` (SSE and HTTP streaming, long-poll) and plain HTTP GETs
from the standard library (polling).

usage: interop.py http://127.0.0.1:PORT      prints "interop: N passed, M failed"
"""
import asyncio
import json
import sys
import urllib.error
import urllib.request

import websockets

BASE = sys.argv[1].rstrip("/")
WS_BASE = "ws://" + BASE.split("://", 1)[1]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)


def http(method, path, body=None, headers=None):
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def publish(channel, obj):
    status, body = http("POST", f"/ch/{channel}", json.dumps(obj).encode(),
                        {"Content-Type": "application/json"})
    assert status == 200, (status, body)
    return json.loads(body)["cursor"]


async def ws_checks():
    ch = "interop-ws"
    async with websockets.connect(f"{WS_BASE}/ch/{ch}") as ws:
        cursors = [publish(ch, {"n": i}) for i in range(3)]
        got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(3)]
        check("websockets: receives published messages in order with cursors",
              [g["cursor"] for g in got] == cursors and [g["data"]["n"] for g in got] == [0, 1, 2], got)
        await ws.send(json.dumps({"n": 3}))
        echo = json.loads(await asyncio.wait_for(ws.recv(), 10))
        check("websockets: a text frame publishes to the channel", echo["data"] == {"n": 3}, echo)
        cursors.append(echo["cursor"])
    check("websockets: clean close", ws.close_code == 1000, ws.close_code)

    async with websockets.connect(f"{WS_BASE}/ch/{ch}?since={cursors[0]}") as ws:
        got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(3)]
        check("websockets: ?since= resumes with exactly the gap",
              [g["cursor"] for g in got] == cursors[1:], got)

    async with websockets.connect(f"{WS_BASE}/ws") as ws:
        await ws.send(json.dumps({"id": 1, "op": "subscribe", "channel": "interop-mux"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        await ws.send(json.dumps({"id": 2, "op": "publish", "channel": "interop-mux", "data": {"x": 1}}))
        frames = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
        push = next((f for f in frames if "id" not in f), None)
        ack = next((f for f in frames if f.get("id") == 2), None)
        check("websockets: /ws subscribe, publish and push",
              "cursor" in reply.get("result", {}) and push and push["data"] == {"x": 1}
              and ack and ack["result"]["cursor"] == push["cursor"], frames)

    try:
        async with websockets.connect(f"{WS_BASE}/ch/ticker:prices") as ws:
            await ws.send("buy everything")
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else None
        check("websockets: publishing where not allowed closes with 1008", code == 1008, code)

    try:
        async with websockets.connect(f"{WS_BASE}/ch/nowhere:x"):
            check("websockets: unknown namespace refused", False, "connected")
    except websockets.InvalidStatus as e:
        check("websockets: unknown namespace refused with 404", e.response.status_code == 404,
              e.response.status_code)


def bch_start(channel):
    """The cursor just before a channel's first message (its epoch, offset 0)."""
    status, body = http("GET", f"/ch/{channel}?transport=poll")
    assert status == 200, (status, body)
    return json.loads(body)["cursor"].split(":")[0] + ":0"


async def curl_lines(args, want, on_ready=None, timeout=10):
    """Runs curl, collects stdout lines until `want(lines)` holds; returns the lines."""
    proc = await asyncio.create_subprocess_exec("curl", "-sN", "--max-time", str(timeout), *args,
                                                stdout=asyncio.subprocess.PIPE)
    lines = []
    try:
        ready_sent = False
        while not want(lines):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
            if not line:
                break
            lines.append(line.decode().rstrip("\n"))
            if on_ready and not ready_sent and on_ready[0](lines):
                ready_sent = True
                await asyncio.to_thread(on_ready[1])
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return lines


async def curl_checks():
    ch = "interop-sse"
    cursors = []
    do_publish = lambda: cursors.extend(publish(ch, {"n": i}) for i in range(2))
    lines = await curl_lines(
        ["-H", "Accept: text/event-stream", f"{BASE}/ch/{ch}"],
        want=lambda ls: sum(1 for l in ls if l.startswith("data: {")) >= 2,
        on_ready=(lambda ls: any(l.startswith("retry:") for l in ls), do_publish))
    ids = [l[4:] for l in lines if l.startswith("id: ")]
    data = [json.loads(l[6:]) for l in lines if l.startswith("data: {")]
    check("curl -N: SSE events carry the cursor as id and the payload as data",
          ids == cursors and data == [{"n": 0}, {"n": 1}], lines)

    more = [publish(ch, {"n": i}) for i in (2, 3)]
    lines = await curl_lines(
        ["-H", "Accept: text/event-stream", "-H", f"Last-Event-ID: {cursors[0]}", f"{BASE}/ch/{ch}"],
        want=lambda ls: sum(1 for l in ls if l.startswith("id: ")) >= 3)
    ids = [l[4:] for l in lines if l.startswith("id: ")]
    check("curl -N: Last-Event-ID resumes with exactly the gap", ids == cursors[1:] + more, lines)

    # The same characters as text and as bytes: only the event tells them apart.
    bch = "interop-binary"
    http("POST", f"/ch/{bch}", b"SGk=", {"Content-Type": "text/plain"})
    http("POST", f"/ch/{bch}", b"Hi", {"Content-Type": "application/octet-stream"})
    lines = await curl_lines(
        ["-H", "Accept: text/event-stream", f"{BASE}/ch/{bch}?since={bch_start(bch)}"],
        want=lambda ls: sum(1 for l in ls if l.startswith("data: ")) >= 2)
    events = [l[7:] for l in lines if l.startswith("event: ")]
    data = [l[6:] for l in lines if l.startswith("data: ")]
    check("curl -N: native SSE marks bytes as event binary (base64), text stays message",
          events == ["message", "binary"] and data == ["SGk=", "SGk="], lines)

    sch = "interop-stream"
    scur = []
    lines = await curl_lines(
        [f"{BASE}/ch/{sch}?transport=stream"],
        want=lambda ls: sum(1 for l in ls if l.startswith("{")) >= 2,
        on_ready=(lambda ls: len(ls) >= 1, lambda: scur.extend(publish(sch, {"n": i}) for i in range(2))))
    envs = [json.loads(l) for l in lines if l.startswith("{")]
    check("curl -N: HTTP streaming sends the padding prelude first",
          len(lines) > 0 and lines[0].strip() == "" and len(lines[0]) >= 2048, lines[:1])
    check("curl -N: HTTP streaming sends one envelope per line",
          [e["cursor"] for e in envs] == scur and [e["data"]["n"] for e in envs] == [0, 1], envs)

    head = json.loads(http("GET", f"/ch/{sch}?transport=poll")[1])["cursor"]
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "--max-time", "10", f"{BASE}/ch/{sch}?transport=longpoll&since={head}",
        stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(0)  # the answer must contain the message whether or not it was held
    c = await asyncio.to_thread(publish, sch, {"lp": True})
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    body = json.loads(out)
    check("curl: long-poll answers with the message and the next cursor",
          body["cursor"] == c and body["messages"][0]["data"] == {"lp": True}, body)


def poll_checks():
    ch = "interop-poll"
    c0 = publish(ch, {"n": 0})
    c1 = publish(ch, {"n": 1})
    c2 = publish(ch, {"n": 2})
    status, body = http("GET", f"/ch/{ch}?since={c0}")
    v = json.loads(body)
    check("GET: polling returns everything since the cursor and the next cursor",
          status == 200 and [m["cursor"] for m in v["messages"]] == [c1, c2] and v["cursor"] == c2, v)
    status, body = http("GET", f"/ch/{ch}?since={c2}")
    v = json.loads(body)
    check("GET: polling at the head returns nothing and the same cursor",
          v["messages"] == [] and v["cursor"] == c2 and v["reset"] is False, v)
    status, body = http("GET", f"/ch/{ch}?since=not-a-cursor")
    check("GET: a malformed cursor is a 400 with an explanation",
          status == 400 and json.loads(body)["error"] == "malformed_cursor", (status, body))
    status, body = http("GET", f"/sub?channel={ch},{c0}&channel=interop-poll-b&transport=poll")
    v = json.loads(body)
    check("GET: /sub polls several channels with a cursor each",
          status == 200 and len(v["messages"]) == 2 and v["cursors"][ch] == c2, v)


async def main():
    for part in (ws_checks, curl_checks):
        try:
            await part()
        except Exception as e:  # a crash in one part is one failure, the rest still runs
            check(f"{part.__name__} ran to the end", False, repr(e))
    try:
        poll_checks()
    except Exception as e:
        check("poll_checks ran to the end", False, repr(e))
    passed = sum(results)
    print(f"interop: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


asyncio.run(main())
