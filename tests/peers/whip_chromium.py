"""A WHIP (RFC 9725) endpoint whose receiver is headless Chromium: aiohttp answers the HTTP side and
passes each offer into an RTCPeerConnection of a page (whip_chromium.html, served by this same
server from 127.0.0.1) through playwright; GET /stats tells a test what Chromium received and
decoded. A second, independent WebRTC stack next to the aiortc endpoint (whip_endpoint.py).

Chromium is Debian's (/usr/bin/chromium), driven by PyPI playwright: never `playwright install`,
nothing is downloaded. Run it from the test venv (scripts/test installs playwright and aiohttp
into target/kp-venv), inside a network namespace that has only loopback (tests/common/whip.rs):
there Chromium gathers 127.0.0.1 alone.

    python whip_chromium.py --port P [--chromium PATH]

HTTP:
    POST /whip/NAME                  Content-Type application/sdp (415 otherwise): the page answers
        recvonly; 201 with `Location: /whip/NAME/session/ID`, Content-Type application/sdp and the
        answer once ICE gathering is complete. An offer Chromium refuses: 400 with Chromium's error,
        and the error and the offer on stderr.
    DELETE /whip/NAME/session/ID     closes that session: 200 (404 for an unknown one).
    PATCH  on a session              405: no trickle ICE.
    GET /stats                       JSON, below.
    GET /health                      200 "kitepush whip endpoint (chromium)" once Chromium has the
                                     page loaded (503 before).
    GET /                            the page.

GET /stats, in whip_endpoint.py's shape where Chromium has the numbers:
    {"posts", "posts_by_status", "deletes", "interfaces",
     "decode_errors": frames Chromium dropped over all sessions (see below),
     "sessions": [{"id", "name", "path", "post_ms", "connected_after_ms", "connected_for_ms",
                   "states", "ice_states", "closed_by": null | "delete" | "failed",
                   "local_candidates", "remote_candidates", "offer": the SDP as POSTed,
                   "ice_checks": the selected candidate pair's STUN counts (getStats()):
                       {"requests_sent", "responses_received", "consent_requests_sent",
                        "requests_received", "responses_sent"},
                   "video": {"frames": getStats() framesDecoded, "frames_received",
                             "frames_dropped", "key_frames_decoded", "packets_received",
                             "packets_lost", "nack_count", "pli_count", "fir_count",
                             "freeze_count", "decoder" (decoderImplementation),
                             "frames_painted" (requestVideoFrameCallback calls),
                             "decode_errors": = frames_dropped, "width", "height",
                             "codes": {...}, "latency_ms": {...}},
                   "audio": {"frames": = packets, "packets", "packets_lost"}}]}

Decode errors: Chromium exposes none as such. A frame its decoder fails on, or that the jitter
buffer gives up on (incomplete, undecodable reference), is not output: it is counted in
getStats()'s framesDropped and usually followed by a PLI. So "decode_errors" here is framesDropped,
a superset of decoder failures. Audio: Chromium counts Opus packets, not decoded frames; one packet
is one 20 ms frame from kitepush, so "frames" is the packet count.

Frame codes: read in the page from every presented frame (requestVideoFrameCallback, drawn to a
canvas, RGB converted back to BT.601 luma), with the same layout and thresholds as
src/pattern/frame_code.rs. The compositor presents at most one frame per refresh, so under load a
decoded frame may never be presented: "codes.missing" can then be > 0 where framesDecoded counts
every frame. Latency = the page's Date.now() at presentation minus the code's ms.
"""

import argparse
import asyncio
import os
import sys
import time
import uuid

import ifaddr
from aiohttp import web
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import async_playwright

HEALTH = "kitepush whip endpoint (chromium)\n"
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "whip_chromium.html")
# DEPENDENCY-NOTES.md "WHIP receivers". Playwright adds its own automation flags (and --headless
# from headless=True). Loopback candidates allowed, mDNS host names off and a fake microphone
# (the page's getUserMedia) so that the answer names 127.0.0.1 itself.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def now_ms():
    return time.time_ns() // 1_000_000


def candidates(sdp):
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) > 5:
                out.append(f"{parts[4]}:{parts[5]}/{parts[2].lower()}")
    return out


class Session:
    def __init__(self, name, path, offer):
        self.id = uuid.uuid4().hex[:16]
        self.name = name
        self.path = path
        self.post_ms = now_ms()
        self.offer = offer
        self.remote_candidates = candidates(offer)
        self.local_candidates = []


class Server:
    def __init__(self, args):
        self.args = args
        self.page = None
        self.sessions = {}
        self.posts = 0
        self.posts_by_status = {}
        self.deletes = 0

    def count_post(self, status):
        self.posts_by_status[str(status)] = self.posts_by_status.get(str(status), 0) + 1

    async def post(self, request):
        self.posts += 1
        if request.content_type != "application/sdp":
            self.count_post(415)
            return web.Response(status=415)
        offer = await request.text()
        # On stderr for the test's failure output: what Chromium was given.
        print(f"--- offer (POST {request.path}) ---\n{offer}--- end ---", file=sys.stderr, flush=True)
        session = Session(request.match_info["name"], request.path, offer)
        try:
            answer = await self.page.evaluate("([id, offer]) => window.kp.answer(id, offer)", [session.id, offer])
        except PlaywrightError as exc:
            # What the lead needs to fix the link: Chromium's own words and the offer it refused.
            print(f"offer refused by Chromium: {exc.message}", file=sys.stderr, flush=True)
            self.count_post(400)
            return web.Response(status=400, text=f"bad offer: {exc.message}\n")
        session.local_candidates = candidates(answer)
        self.sessions[session.id] = session
        self.count_post(201)
        return web.Response(
            status=201,
            headers={"Location": f"{request.path}/session/{session.id}", "Content-Type": "application/sdp"},
            body=answer.encode(),
        )

    async def delete(self, request):
        session = self.sessions.get(request.match_info["id"])
        if session is None or session.name != request.match_info["name"]:
            return web.Response(status=404)
        self.deletes += 1
        await self.page.evaluate("id => window.kp.close(id)", session.id)
        return web.Response(status=200)

    async def patch(self, request):
        return web.Response(status=405, headers={"Allow": "DELETE"})

    async def stats(self, request):
        page_stats = await self.page.evaluate("() => window.kp.stats()")
        sessions = []
        dropped = 0
        for s in self.sessions.values():
            p = page_stats.get(s.id, {})
            video = dict(p.get("video", {}))
            video["decode_errors"] = video.get("frames_dropped", 0)
            dropped += video["decode_errors"]
            audio = dict(p.get("audio", {}))
            audio["frames"] = audio.get("packets", 0)
            connected = p.get("connected_ms")
            sessions.append(
                {
                    "id": s.id,
                    "name": s.name,
                    "path": s.path,
                    "post_ms": s.post_ms,
                    "connected_after_ms": None if connected is None else max(0, connected - s.post_ms),
                    "connected_for_ms": p.get("connected_for_ms"),
                    "states": p.get("states", []),
                    "ice_states": p.get("ice_states", []),
                    "closed_by": p.get("closed_by"),
                    "ice_checks": p.get("ice_checks", {}),
                    "local_candidates": s.local_candidates,
                    "remote_candidates": s.remote_candidates,
                    "offer": s.offer,
                    "video": video,
                    "audio": audio,
                }
            )
        return web.json_response(
            {
                "posts": self.posts,
                "posts_by_status": dict(self.posts_by_status),
                "deletes": self.deletes,
                "decode_errors": dropped,
                "interfaces": sorted({a.nice_name for a in ifaddr.get_adapters()}),
                "sessions": sessions,
            }
        )

    async def health(self, request):
        if self.page is None:
            return web.Response(status=503)
        return web.Response(text=HEALTH)

    async def index(self, request):
        return web.FileResponse(PAGE, headers={"Cache-Control": "no-store"})


async def run(args):
    server = Server(args)
    app = web.Application()
    app.router.add_post("/whip/{name}", server.post)
    app.router.add_delete("/whip/{name}/session/{id}", server.delete)
    app.router.add_patch("/whip/{name}/session/{id}", server.patch)
    app.router.add_get("/stats", server.stats)
    app.router.add_get("/health", server.health)
    app.router.add_get("/", server.index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS)
        page = await browser.new_page()
        page.on("console", lambda m: print(f"page console {m.type}: {m.text}", file=sys.stderr, flush=True))
        page.on("pageerror", lambda e: print(f"page error: {e}", file=sys.stderr, flush=True))
        page.on("crash", lambda _: print("page crashed", file=sys.stderr, flush=True))
        await page.goto(f"http://127.0.0.1:{args.port}/")
        await page.wait_for_function("() => window.kp && window.kp.ready")
        print(f"Chromium {browser.version} ready on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        server.page = page
        # Until killed (the test drops it) or the browser goes away.
        closed = asyncio.Event()
        browser.on("disconnected", lambda _: closed.set())
        await closed.wait()
        print("Chromium went away", file=sys.stderr, flush=True)
    await runner.cleanup()
    sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    try:
        asyncio.run(run(args))
    except OSError as exc:
        # tests/common/whip.rs retries another port on this exact wording.
        print(f"error: {exc} (address already in use?)" if exc.errno == 98 else f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
