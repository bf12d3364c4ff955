"""A WHIP (RFC 9725) endpoint for kitepush's tests: aiohttp answers the HTTP side, aiortc receives
and decodes the media, and GET /stats tells a test what arrived.

Run it from the test venv (scripts/test installs aiortc and aiohttp into target/kp-venv), normally
inside a network namespace that has only loopback (tests/common/whip.rs does both):

    python whip_endpoint.py --port P [--bearer TOKEN] [--status CODE] [--busy N [--retry-after S]]
                            [--redirect]

    --port P          listen on 127.0.0.1:P (required).
    --bearer TOKEN    POSTs must carry `Authorization: Bearer TOKEN`; 401 otherwise.
    --status CODE     answer every POST with CODE and an empty body (e.g. 401, 403, 500): a
                      publisher's error handling, and how many times it tries (GET /stats "posts").
    --busy N          answer the first N POSTs with 503 and `Retry-After: S` (--retry-after S,
                      default 1), then work.
    --redirect        answer POST /whip/NAME with 307 to /whip2/NAME, which works.
    --media-via H:P   every candidate of the answer says H:P instead of aiortc's own address: a UDP
                      fault proxy listens there and forwards to the session's real candidate (its
                      "local_candidates" in GET /stats stay the real ones).
    --offer-via H:P   every candidate of the offer is read as H:P (the proxy's upstream side), so
                      aiortc reaches the publisher only through the proxy too ("remote_candidates"
                      stay the offer's own).
    --consent-interval S, --consent-failures N
                      ICE consent freshness (RFC 7675): a check every S seconds (default 5,
                      randomised by +-20 %), the session dropped after N unanswered in a row
                      (default 6). Short values catch a publisher that stops answering in seconds.
    --parent-pid PID  exit once PID is no longer this process's parent: a test binary killed before
                      its cleanup ran (SIGKILL, a namespace child torn down) leaves nothing running.

HTTP:
    POST /whip/NAME (and /whip2/NAME)   Content-Type application/sdp (415 otherwise): an aiortc
        peer connection answers recvonly; 201 with `Location: /whip/NAME/session/ID`, Content-Type
        application/sdp and the answer once ICE gathering is complete. An unparsable offer: 400.
    DELETE /whip/NAME/session/ID        closes that session: 200 (404 for an unknown one).
    PATCH  on a session                 405: no trickle ICE (the answer carries every candidate).
    GET /stats                          JSON, below.
    GET /health                         200 "kitepush whip endpoint" once listening.

GET /stats:
    {"posts": total POSTs, "posts_by_status": {"201": n, ...}, "deletes": n,
     "decode_errors": n (all sessions), "interfaces": [names ifaddr sees: "lo" alone in the netns],
     "opus_modes": {"silk", "hybrid", "celt"}: Opus packets given to the decoder (all sessions),
                   by the mode their TOC byte names (RFC 6716 3.1): a sender protecting its
                   packets with in-band FEC uses SILK or hybrid, where the LBRR frames are,
     "sessions": [{"id", "name", "path", "post_ms" (wall clock of the POST),
                   "connected_after_ms" (POST to connectionState "connected", null before),
                   "connected_for_ms" (connected until closed or now), "states": connectionState
                   changes, "ice_states": iceConnectionState changes, "closed_by": null (open) |
                   "delete" | "consent" (ICE consent expired: the publisher stopped answering
                   checks) | "failed" (connectivity lost before or while connecting) | "closed"
                   (anything else, e.g. the publisher's DTLS close), "local_candidates" and
                   "remote_candidates": candidate addresses from the SDP,
                   "offer": the offer's SDP as POSTed,
                   "video": {"frames", "decode_errors", "width", "height",
                             "codes": {"read", "unreadable", "first", "last", "missing",
                                       "not_increasing"},
                             "latency_ms": {"count", "p50", "p95", "max"}},
                   "audio": {"frames"},
                   "messages": [{"code": frame code of the picture it came with (null if
                                 unreadable), "uuid": hex, "data": hex}, ...] in arrival order:
                                 the user_data_unregistered SEIs of the H.264 access units}]}

Decode errors: aiortc logs a warning when PyAV raises on a frame ("failed to decode"), and FFmpeg's
H.264 decoder reports concealed damage (corrupt macroblocks ...) only through its log at error level;
both are counted, per session by the decoder thread that logged them. The count is of reports, not
frames: one damaged frame often gives two or more. A frame lost whole is no decode error (aiortc's
jitter buffer never hands it over): it shows as a gap in the frame codes and in the frame count.

Frame codes: kitepush's test pattern carries the frame number and the wall-clock ms it was drawn in
black/white blocks at the top left; the layout is documented in src/pattern/frame_code.rs and read
here the same way (read_frame_code). Latency = wall clock at decode (low 32 bits of ms) minus the
code's ms, so it is glass-to-glass on one machine.
"""

import argparse
import asyncio
import logging
import re
import sys
import threading
import time
import uuid

import aioice.ice
import aiortc.codecs.h264 as aiortc_h264
import aiortc.codecs.opus as aiortc_opus
import av
import ifaddr
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger("whip_endpoint")


# aioice leaves 127.0.0.1 out of its host candidates; in a loopback-only namespace it would then
# offer none. Loopback only, in or out of a namespace: the machine's other interfaces are no test
# target.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


# Opus packets by the mode their TOC byte names (configurations 0-11 SILK, 12-15 hybrid, 16-31
# CELT), counted where aiortc hands them to its decoder.
OPUS_MODES = {"silk": 0, "hybrid": 0, "celt": 0}
_opus_decode = aiortc_opus.OpusDecoder.decode


def _counting_opus_decode(self, encoded_frame):
    if encoded_frame.data:
        config = encoded_frame.data[0] >> 3
        OPUS_MODES["silk" if config < 12 else "hybrid" if config < 16 else "celt"] += 1
    return _opus_decode(self, encoded_frame)


aiortc_opus.OpusDecoder.decode = _counting_opus_decode


# ---- frame code (src/pattern/frame_code.rs) -------------------------------------------------

CODE_COLS, CODE_ROWS = 32, 2
ZERO_BELOW, ONE_ABOVE = 96, 160


def code_block_size(w, h):
    b = min(w // 40, h // 30) // 8 * 8
    if b >= 8 and (CODE_COLS + 2) * b <= w and (CODE_ROWS + 2) * b <= h:
        return b
    return None


def crc16_ccitt_false(data):
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def read_frame_code(luma, stride, w, h):
    """(frame number, ms) from a luma plane, or None: no code, a smeared block, a CRC mismatch."""
    b = code_block_size(w, h)
    if b is None or stride < w or len(luma) < (CODE_ROWS + 1) * b * stride:
        return None
    lo, hi = b // 4, 3 * b // 4
    area = (hi - lo) * (hi - lo)
    code = 0
    for i in range(CODE_ROWS * CODE_COLS):
        x, top = (1 + i % CODE_COLS) * b, (1 + i // CODE_COLS) * b
        total = 0
        for row in range(top + lo, top + hi):
            at = row * stride + x
            total += sum(luma[at + lo : at + hi])
        mean = total // area
        if mean < ZERO_BELOW:
            bit = 0
        elif mean > ONE_ABOVE:
            bit = 1
        else:
            return None
        code = (code << 1) | bit
    frame, ms, crc = code >> 48, (code >> 16) & 0xFFFFFFFF, code & 0xFFFF
    if crc16_ccitt_false(frame.to_bytes(2, "big") + ms.to_bytes(4, "big")) != crc:
        return None
    return frame, ms


# ---- sessions -------------------------------------------------------------------------------


async def exit_with_parent(parent_pid):
    import os

    while os.getppid() == parent_pid:
        await asyncio.sleep(0.5)
    print(f"parent {parent_pid} gone: exiting", file=sys.stderr, flush=True)
    os._exit(0)


# ---- SEI user data (src/core/sei.rs writes it) ---------------------------------------------------
# aiortc hands the app decoded pictures only; the access units pass through H264Decoder.decode,
# which is wrapped here to note each unit's user_data_unregistered SEIs by (decoder thread, RTP
# timestamp). The decoded picture carries the same timestamp as its pts, so consume_video puts each
# message beside the frame code of the picture it came with.
SEI_BY_FRAME = {}
SEI_LOCK = threading.Lock()


def user_data_seis(annexb):
    """(uuid, data) of every user_data_unregistered SEI message in an Annex B access unit."""
    out = []
    for nal in re.split(b"\x00\x00\x01", bytes(annexb)):
        # A 4-byte start code leaves its leading zero at the end of the previous NAL unit.
        nal = nal.rstrip(b"\x00")
        if not nal or nal[0] & 0x1F != 6:
            continue
        rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
        i = 0
        try:
            while i < len(rbsp) and not (i == len(rbsp) - 1 and rbsp[i] == 0x80):
                values = []
                for _ in range(2):  # payload type, then payload size: runs of 0xFF plus a last byte
                    v = 0
                    while rbsp[i] == 0xFF:
                        v += 255
                        i += 1
                    values.append(v + rbsp[i])
                    i += 1
                ptype, size = values
                payload = rbsp[i : i + size]
                i += size
                if ptype == 5 and len(payload) >= 16:
                    out.append((payload[:16], payload[16:]))
        except IndexError:
            pass  # a truncated SEI: what was read stands
    return out


_aiortc_h264_decode = aiortc_h264.H264Decoder.decode


def decode_noting_seis(self, encoded_frame):
    seis = user_data_seis(encoded_frame.data)
    if seis:
        with SEI_LOCK:
            SEI_BY_FRAME.setdefault((threading.get_ident(), encoded_frame.timestamp), []).extend(seis)
    return _aiortc_h264_decode(self, encoded_frame)


aiortc_h264.H264Decoder.decode = decode_noting_seis


def now_ms():
    return time.time_ns() // 1_000_000


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def candidates(sdp):
    """Addresses of the a=candidate lines: the test checks ICE stayed on loopback."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) > 5:
                out.append(f"{parts[4]}:{parts[5]}/{parts[2].lower()}")
    return out


class Session:
    def __init__(self, name, path, offer_sdp):
        self.id = uuid.uuid4().hex[:16]
        self.name = name
        self.path = path
        self.post_ms = now_ms()
        self.connected_ms = None
        self.ended_ms = None
        self.states = []
        self.ice_states = []
        self.closed_by = None
        self.offer = offer_sdp
        self.remote_candidates = candidates(offer_sdp)
        self.local_candidates = []
        self.pc = None
        self.video_frames = 0
        self.video_decode_errors = 0
        self.width = None
        self.height = None
        self.audio_frames = 0
        self.audio_samples = 0
        self.audio_peak = 0
        self.codes_read = 0
        self.codes_unreadable = 0
        self.first_code = None
        self.last_code = None
        self.missing = 0
        self.not_increasing = 0
        self.latencies = []
        # Frame codes of the decoded keyframes, and PLIs sent on the test's request (/pli).
        self.keyframe_codes = []
        self.plis_sent = 0
        self.messages = []
        self.video_receiver = None
        # Idents of this session's decoder threads, to attribute decoder log lines.
        self.decoder_threads = set()

    def on_code(self, frame, ms, received_ms):
        self.codes_read += 1
        if self.last_code is not None:
            step = (frame - self.last_code) % 65536
            if step == 0 or step >= 32768:
                self.not_increasing += 1
            else:
                self.missing += step - 1
        else:
            self.first_code = frame
        self.last_code = frame
        latency = (received_ms - ms) % (1 << 32)
        if latency >= 1 << 31:
            latency -= 1 << 32
        self.latencies.append(latency)

    def close(self, by):
        if self.closed_by is None:
            self.closed_by = by
            self.ended_ms = now_ms()

    def stats(self):
        lat = sorted(self.latencies)
        end = self.ended_ms if self.ended_ms is not None else now_ms()
        return {
            "id": self.id,
            "name": self.name,
            "path": self.path,
            "post_ms": self.post_ms,
            "connected_after_ms": None if self.connected_ms is None else self.connected_ms - self.post_ms,
            "connected_for_ms": None if self.connected_ms is None else max(0, end - self.connected_ms),
            "states": self.states,
            "ice_states": self.ice_states,
            "closed_by": self.closed_by,
            "local_candidates": self.local_candidates,
            "remote_candidates": self.remote_candidates,
            "offer": self.offer,
            "video": {
                "frames": self.video_frames,
                "decode_errors": self.video_decode_errors,
                "width": self.width,
                "height": self.height,
                "codes": {
                    "read": self.codes_read,
                    "unreadable": self.codes_unreadable,
                    "first": self.first_code,
                    "last": self.last_code,
                    "missing": self.missing,
                    "not_increasing": self.not_increasing,
                },
                "latency_ms": {
                    "count": len(lat),
                    "p50": percentile(lat, 50),
                    "p95": percentile(lat, 95),
                    "max": lat[-1] if lat else None,
                },
            },
            "audio": {"frames": self.audio_frames, "samples": self.audio_samples, "peak": self.audio_peak},
            "keyframe_codes": self.keyframe_codes,
            "plis_sent": self.plis_sent,
            "messages": self.messages,
        }


class DecodeErrorCounter(logging.Handler):
    """Counts decoder failures: aiortc's "failed to decode" warnings and libav's H.264 errors."""

    def __init__(self, server):
        super().__init__(level=logging.DEBUG)
        self.server = server

    def emit(self, record):
        if record.name == "aiortc.rtcrtpreceiver":
            if "failed to decode" not in record.getMessage():
                return
        elif not (record.name.startswith("libav.h264") and record.levelno >= logging.ERROR):
            return
        with self.server.lock:
            self.server.decode_errors += 1
            for s in self.server.sessions.values():
                if record.thread in s.decoder_threads:
                    s.video_decode_errors += 1
                    break
            else:
                # A decoder thread not seen yet (its first frame failed): the newest session is the
                # best guess, and the global count is exact anyway.
                if self.server.sessions:
                    list(self.server.sessions.values())[-1].video_decode_errors += 1
        print(f"decode error: {record.name}: {record.getMessage()}", file=sys.stderr, flush=True)


class ConsentWatch(logging.Handler):
    """Notes the aioice connections that closed because consent expired: aioice logs it just before
    it closes, and the peer connection then only says "closed"."""

    def __init__(self, server):
        super().__init__(level=logging.INFO)
        self.server = server

    def emit(self, record):
        if "Consent to send expired" in str(record.msg) and record.args:
            self.server.consent_expired.add(id(record.args[0]))


def ice_connections(pc):
    out = []
    for t in pc.getTransceivers():
        dtls = t.receiver.transport
        conn = getattr(getattr(dtls, "transport", None), "_connection", None)
        if conn is not None:
            out.append(conn)
    return out


class Server:
    def __init__(self, args):
        self.args = args
        self.sessions = {}
        self.posts = 0
        self.posts_by_status = {}
        self.deletes = 0
        self.decode_errors = 0
        self.consent_expired = set()
        # The log handler runs on decoder threads.
        self.lock = threading.Lock()

    def count_post(self, status):
        self.posts_by_status[str(status)] = self.posts_by_status.get(str(status), 0) + 1

    async def post(self, request):
        with self.lock:
            self.posts += 1
            n = self.posts
        name = request.match_info["name"]
        a = self.args
        status, headers, body = None, {}, b""
        if a.status:
            status = a.status
        elif a.busy and n <= a.busy:
            status, headers = 503, {"Retry-After": str(a.retry_after)}
        elif a.bearer and request.headers.get("Authorization") != f"Bearer {a.bearer}":
            status, headers = 401, {"WWW-Authenticate": "Bearer"}
        elif request.content_type != "application/sdp":
            status = 415
        elif a.redirect and request.path.startswith("/whip/"):
            status, headers = 307, {"Location": f"/whip2/{name}"}
        if status is not None:
            self.count_post(status)
            return web.Response(status=status, headers=headers, body=body)

        offer = await request.text()
        try:
            # aiortc answers an offer without media with an empty session instead of refusing it.
            if "\nm=" not in "\n" + offer:
                raise ValueError("no m= line")
            answer, session = await self.answer(name, request.path, offer)
        except Exception as exc:  # a malformed offer is the publisher's fault: say so in the log
            log.warning("offer refused: %r", exc)
            self.count_post(400)
            return web.Response(status=400, text=f"bad offer: {exc}\n")
        self.count_post(201)
        location = f"{request.path}/session/{session.id}"
        return web.Response(
            status=201,
            headers={"Location": location, "Content-Type": "application/sdp"},
            body=answer.encode(),
        )

    async def answer(self, name, path, offer_sdp):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = Session(name, path, offer_sdp)
        session.pc = pc

        @pc.on("connectionstatechange")
        async def on_state():
            state = pc.connectionState
            session.states.append(state)
            if state == "connected" and session.connected_ms is None:
                session.connected_ms = now_ms()
            elif state == "failed":
                session.close("failed")
                await pc.close()
            elif state == "closed":
                expired = any(id(c) in self.consent_expired for c in ice_connections(pc))
                session.close("consent" if expired else "closed")

        @pc.on("iceconnectionstatechange")
        def on_ice_state():
            session.ice_states.append(pc.iceConnectionState)

        @pc.on("track")
        def on_track(track):
            receiver = next((t.receiver for t in pc.getTransceivers() if t.receiver.track is track), None)
            if track.kind == "video":
                session.video_receiver = receiver
                asyncio.ensure_future(self.consume_video(session, track, receiver))
            else:
                asyncio.ensure_future(self.consume_audio(session, track))

        remote = via(offer_sdp, self.args.offer_via) if self.args.offer_via else offer_sdp
        await pc.setRemoteDescription(RTCSessionDescription(sdp=remote, type="offer"))
        for t in pc.getTransceivers():
            t.direction = "recvonly"
        await pc.setLocalDescription(await pc.createAnswer())
        # aiortc's setLocalDescription returns once gathering is complete: the answer has every
        # candidate, so the publisher needs no trickle ICE.
        answer = pc.localDescription.sdp
        session.local_candidates = candidates(answer)
        if self.args.media_via:
            answer = via(answer, self.args.media_via)
        with self.lock:
            self.sessions[session.id] = session
        return answer, session

    async def consume_video(self, session, track, receiver):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            received_ms = now_ms()
            if receiver is not None and not session.decoder_threads:
                thread = getattr(receiver, "_RTCRtpReceiver__decoder_thread", None)
                if thread is not None and thread.ident is not None:
                    session.decoder_threads.add(thread.ident)
            session.video_frames += 1
            session.width, session.height = frame.width, frame.height
            plane = frame.planes[0]
            code = read_frame_code(memoryview(plane).cast("B"), plane.line_size, frame.width, frame.height)
            with SEI_LOCK:
                for t in session.decoder_threads:
                    for u, d in SEI_BY_FRAME.pop((t, frame.pts), []):
                        session.messages.append({"code": None if code is None else code[0], "uuid": u.hex(), "data": d.hex()})
            if code is None:
                session.codes_unreadable += 1
            else:
                session.on_code(code[0], code[1], received_ms & 0xFFFFFFFF)
                if frame.key_frame:
                    session.keyframe_codes.append(code[0])

    async def consume_audio(self, session, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            session.audio_frames += 1
            # Decoded samples per channel, and the loudest (s16, interleaved): silence or a
            # garbled stream would not carry the publisher's tone.
            session.audio_samples += frame.samples
            pcm = memoryview(bytes(frame.planes[0])).cast("h")
            if len(pcm):
                session.audio_peak = max(session.audio_peak, max(pcm), -min(pcm))

    async def delete(self, request):
        session = self.sessions.get(request.match_info["id"])
        if session is None or session.name != request.match_info["name"]:
            return web.Response(status=404)
        self.deletes += 1
        session.close("delete")
        await session.pc.close()
        return web.Response(status=200)

    async def pli(self, request):
        """Test control: a Picture Loss Indication (RFC 4585) for the session's video, as a
        receiver sends when it lost the reference pictures; the publisher owes a keyframe."""
        session = self.sessions.get(request.match_info["id"])
        receiver = session and session.video_receiver
        if receiver is None:
            return web.Response(status=404)
        rtx = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})
        streams = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
        ssrcs = [ssrc for ssrc in list(streams) if ssrc not in rtx]
        for ssrc in ssrcs:
            await receiver._send_rtcp_pli(ssrc)
        session.plis_sent += len(ssrcs)
        return web.json_response({"ssrcs": ssrcs})

    async def patch(self, request):
        return web.Response(status=405, headers={"Allow": "DELETE"})

    async def stats(self, request):
        with self.lock:
            body = {
                "posts": self.posts,
                "posts_by_status": dict(self.posts_by_status),
                "deletes": self.deletes,
                "decode_errors": self.decode_errors,
                "opus_modes": dict(OPUS_MODES),
                "interfaces": sorted({a.nice_name for a in ifaddr.get_adapters()}),
                "sessions": [s.stats() for s in self.sessions.values()],
            }
        return web.json_response(body)

    async def health(self, request):
        return web.Response(text="kitepush whip endpoint\n")

    async def shutdown(self, app):
        for s in list(self.sessions.values()):
            await s.pc.close()


def via(sdp, address):
    """`sdp` with every candidate's address replaced by `address` (HOST:PORT): a fault proxy's."""
    host, port = address.rsplit(":", 1)
    return re.sub(
        r"^(a=candidate:\S+ \d+ \S+ \d+) \S+ \d+ (typ .*)$",
        lambda m: f"{m.group(1)} {host} {port} {m.group(2)}",
        sdp,
        flags=re.M,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bearer")
    p.add_argument("--status", type=int)
    p.add_argument("--busy", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--redirect", action="store_true")
    p.add_argument("--media-via")
    p.add_argument("--offer-via")
    p.add_argument("--consent-interval", type=float)
    p.add_argument("--consent-failures", type=int)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--parent-pid", type=int)
    args = p.parse_args()
    # aioice reads these module globals at every check.
    if args.consent_interval is not None:
        aioice.ice.CONSENT_INTERVAL = args.consent_interval
    if args.consent_failures is not None:
        aioice.ice.CONSENT_FAILURES = args.consent_failures

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    server = Server(args)
    counter = DecodeErrorCounter(server)
    logging.getLogger("aiortc.rtcrtpreceiver").addHandler(counter)
    logging.getLogger("libav").addHandler(counter)
    aioice_log = logging.getLogger("aioice.ice")
    aioice_log.setLevel(logging.INFO)
    aioice_log.addHandler(ConsentWatch(server))
    # PyAV silences libav unless a level is set; errors are what concealed damage looks like.
    av.logging.set_level(av.logging.ERROR)
    # Count every report, not one per run of identical lines.
    av.logging.set_skip_repeated(False)

    app = web.Application()
    for prefix in ("/whip", "/whip2"):
        app.router.add_post(prefix + "/{name}", server.post)
        app.router.add_delete(prefix + "/{name}/session/{id}", server.delete)
        app.router.add_patch(prefix + "/{name}/session/{id}", server.patch)
    app.router.add_post("/pli/{id}", server.pli)
    app.router.add_get("/stats", server.stats)
    app.router.add_get("/health", server.health)
    app.on_shutdown.append(server.shutdown)
    if args.parent_pid is not None:

        async def watch_parent(app):
            app["parent_watch"] = asyncio.ensure_future(exit_with_parent(args.parent_pid))

        app.on_startup.append(watch_parent)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    main()
