#!/usr/bin/env python3
"""Independent Threshold device (camera and lock), written from docs/protocol.md only.

Dependencies: `cryptography` (Ed25519) and `paho-mqtt` >= 2 (MQTT 5).

    device.py selftest [--doc docs/protocol.md]
    device.py run --kind camera --data-dir DIR --hub http://127.0.0.1:18500 --pairing-code XXXX-XXXX-XXXX
    device.py run --kind lock   --data-dir DIR [--door-sensor] [--simulate-entry]

See README.md next to this file.
"""

import argparse
import hashlib
import json
import math
import os
import random
import re
import struct
import sys
import threading
import time
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives import serialization

# ---------------------------------------------------------------- constants (§1)
MAGIC = b"THR1"
HEADER_LEN = 42
SIGNATURE_LEN = 64
MAX_MESSAGE_BYTES = 4194304
MAX_JSON_BODY = 65536
MAX_CLOCK_SKEW_MS = 2000
DOWNLINK_WINDOW_MS = 30000
TOKEN_SKEW_MS = 5000
MAX_TOKEN_LIFETIME_MS = 120000
MAX_SEQ = (1 << 63) - 1
MAX_JPEG = 2097152
STATEMENT_MAX_AGE_MS = 3000      # §1, lock setting (§10.3)
STATEMENT_MAX_FUTURE_MS = 2000   # §1, lock setting (§10.3)
MAX_STATEMENT_BYTES = 2048       # §9.9 / check 9.4: decoded statement size
MAX_DOOR_CAMERAS = 16            # §9.11
CAMERA_WAIVERS = ("owner_override", "guest_grant")  # §9.9 / check 9.3

KINDS = {  # §5
    "hello": 1, "heartbeat": 2, "state": 3,
    "event": 16, "frame": 17,
    "ack": 64, "stream": 65, "unlock": 66, "lock": 67, "cameras": 68,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}
LIVE_KINDS = {1, 2, 3}
# §5 says 64-127 are downlink codes and lists 64-68; §10.1 check 1 still says "64-67",
# which would drop every `cameras` message (68). We follow §5 (README: "Where the
# document had to be guessed").
DOWNLINK_KINDS = {64, 65, 66, 67, 68}

AGENT = "thirdparty-py/0.2.0"


class DecodeError(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def now_ms():
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------- Ed25519 strict (§3.5)
_P = 2 ** 255 - 19
_L = 2 ** 252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _decompress(b):
    """Decode a 32-byte Edwards point (like curve25519-dalek: y is reduced mod p).
    Returns extended coordinates or None if not on the curve."""
    y = int.from_bytes(b, "little") & ((1 << 255) - 1)
    sign = b[31] >> 7
    y %= _P
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x2 = u * pow(v, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = (-x) % _P
    return (x, y, 1, x * y % _P)


def _double(pt):
    X1, Y1, Z1, _ = pt
    A = X1 * X1 % _P
    B = Y1 * Y1 % _P
    C = 2 * Z1 * Z1 % _P
    H = (A + B) % _P
    E = (H - (X1 + Y1) * (X1 + Y1)) % _P
    G = (A - B) % _P
    F = (C + G) % _P
    return (E * F % _P, G * H % _P, F * G % _P, E * H % _P)


def is_small_order(b):
    pt = _decompress(b)
    if pt is None:
        return True  # not a valid point at all: reject as well
    for _ in range(3):
        pt = _double(pt)
    X, Y, Z, _ = pt
    return X % _P == 0 and (Y - Z) % _P == 0


def verify_strict(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(public_key) != 32 or len(signature) != 64:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    if is_small_order(public_key) or is_small_order(signature[:32]):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class Key:
    def __init__(self, seed: bytes):
        assert len(seed) == 32
        self.seed = seed
        self._sk = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._sk.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.device_id = hashlib.sha256(self.public).digest()[:16]  # §3.3

    def sign(self, data: bytes) -> bytes:
        return self._sk.sign(data)


# ---------------------------------------------------------------- envelope (§4)
def encode(key: Key, kind: int, device_id: bytes, seq: int, time_ms: int, body: bytes) -> bytes:
    assert 1 <= seq <= MAX_SEQ and time_ms > 0 and len(device_id) == 16
    head = MAGIC + bytes([kind, 0]) + device_id + struct.pack(">QqI", seq, time_ms, len(body))
    signed = head + body
    msg = signed + key.sign(signed)
    if len(msg) > MAX_MESSAGE_BYTES:
        raise ValueError("message too large")
    return msg


class Envelope:
    __slots__ = ("kind", "flags", "device_id", "seq", "time_ms", "body", "signed", "signature")


def decode(msg: bytes) -> Envelope:
    """§4.3, checks in order. Signature is not checked here."""
    n = len(msg)
    if n > MAX_MESSAGE_BYTES:
        raise DecodeError("too_large")
    if n < HEADER_LEN + SIGNATURE_LEN:
        raise DecodeError("truncated")
    if msg[0:4] != MAGIC:
        raise DecodeError("bad_magic")
    if msg[4] not in KIND_NAMES:
        raise DecodeError("unknown_kind")
    if msg[5] != 0:
        raise DecodeError("bad_flags")
    (blen,) = struct.unpack(">I", msg[38:42])
    if HEADER_LEN + blen + SIGNATURE_LEN != n:
        raise DecodeError("length_mismatch")
    e = Envelope()
    e.kind = msg[4]
    e.flags = msg[5]
    e.device_id = bytes(msg[6:22])
    e.seq, e.time_ms = struct.unpack(">Qq", msg[22:38])
    e.body = bytes(msg[42:42 + blen])
    e.signed = bytes(msg[:42 + blen])
    e.signature = bytes(msg[42 + blen:])
    return e


def jdump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate member " + k)
        d[k] = v
    return d


def jparse(body: bytes):
    if len(body) > MAX_JSON_BODY:
        raise ValueError("body too long")
    if body.startswith(b"\xef\xbb\xbf"):
        raise ValueError("BOM")
    obj = json.loads(body.decode("utf-8"), object_pairs_hook=_no_dupes,
                     parse_float=lambda s: (_ for _ in ()).throw(ValueError("float")),
                     parse_constant=lambda s: (_ for _ in ()).throw(ValueError("const")))
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    return obj


def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def frame_body(header: dict, jpeg: bytes) -> bytes:
    h = jdump(header)
    return struct.pack(">I", len(h)) + h + jpeg


# ---------------------------------------------------------------- enrolment proof (§8)
def normalise_code(code: str) -> str:
    c = re.sub(r"[\s-]", "", code.strip()).upper()
    if len(c) == 12:
        return f"{c[0:4]}-{c[4:8]}-{c[8:12]}"
    return code.strip().upper()


def enrol_request(key: Key, code: str, kind: str) -> dict:
    pk = key.public.hex()
    proof = key.sign(f"threshold-enrol-v1:{code}:{pk}".encode("ascii"))
    return {"pairing_code": code, "public_key": pk, "kind": kind, "proof": proof.hex()}


# ---------------------------------------------------------------- unlock token checks (§10.3)
class LockSettings:
    """The lock's own camera settings (§10.3, "The lock's camera settings"): never set by
    the hub."""

    def __init__(self, max_age_ms=STATEMENT_MAX_AGE_MS, max_future_ms=STATEMENT_MAX_FUTURE_MS,
                 allow_waiver=True):
        self.max_age_ms = max_age_ms
        self.max_future_ms = max_future_ms
        self.allow_waiver = allow_waiver


class Verdict:
    """Outcome of checks 1-10 of §10.3. `check` is the number of the failed check (9 for
    every camera-check reason) or None when all passed; `body` the parsed token body when
    it could be parsed (for `grant`/`nonce` in `token_refused`); `evidence` the camera
    statement or waiver that passed check 9 (for `token_accepted`)."""
    __slots__ = ("check", "reason", "body", "evidence")

    def __init__(self, check, reason, body=None, evidence=None):
        self.check, self.reason, self.body, self.evidence = check, reason, body, evidence

    @property
    def passed_transport(self):
        """Checks 1-5 passed: the token counts as an accepted downlink (§10.3)."""
        return self.check is None or self.check > 5


_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def b64decode_strict(text: str):
    """Standard base64 (RFC 4648 §4) with padding. Refuses white space, the URL-safe
    alphabet, missing padding and non-canonical trailing bits (a re-encoding must give the
    same text). Returns None if the text is not valid."""
    import base64
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        return None
    if len(raw) % 4 or not _B64.fullmatch(raw):
        return None
    try:
        out = base64.b64decode(raw, validate=True)
    except (ValueError, TypeError):
        return None
    if base64.b64encode(out) != raw:
        return None
    return out


def device_id_of(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()[:16]  # §3.3


def check_camera(body: dict, now: int, door_keys: dict, settings: LockSettings):
    """Check 9 of §10.3 (9.1-9.9, in the document's order).

    door_keys maps a camera's device id (16 bytes) to its public key (32 bytes).
    Returns (reason, evidence): reason None means check 9 passed and evidence is the
    `token_accepted` detail part: {camera, frame_seq, capture_ms} or {camera_waived}."""
    stmt = body.get("camera")          # null counts as absent (§9.1)
    waiver = body.get("camera_waived")
    # 9.1: not both
    if stmt is not None and waiver is not None:
        return "malformed", None
    # 9.2: any waiver (whatever its value) needs a lock that allows waivers
    if waiver is not None and not settings.allow_waiver:
        return "camera_waiver_refused", None
    # 9.3: no statement: only a known waiver passes
    if stmt is None:
        if waiver in CAMERA_WAIVERS:
            return None, {"camera_waived": waiver}
        return "camera_statement_missing", None
    # 9.4: base64, <= 2048 bytes decoded, decodes (§4.3) as a heartbeat
    raw = b64decode_strict(stmt) if len(stmt) <= 4 * ((MAX_STATEMENT_BYTES + 2) // 3) else None
    if raw is None or len(raw) > MAX_STATEMENT_BYTES:
        return "camera_statement_malformed", None
    try:
        hb = decode(raw)
    except DecodeError:
        return "camera_statement_malformed", None
    if hb.kind != KINDS["heartbeat"]:
        return "camera_statement_malformed", None
    # 9.5: signed in the name of one of the door's cameras
    pk = door_keys.get(hb.device_id)
    if pk is None:
        return "camera_not_bound", None
    # 9.6: strict signature with that camera's key
    if not verify_strict(pk, hb.signed, hb.signature):
        return "camera_statement_bad_signature", None
    # 9.7: a heartbeat announcing a frame: seq, time_ms, sha256 and thumb all present
    try:
        hbody = jparse(hb.body)
        fr = hbody.get("frame")
        if not (isinstance(fr, dict) and _is_uint(fr.get("seq")) and _is_int(fr.get("time_ms"))
                and isinstance(fr.get("sha256"), str) and isinstance(fr.get("thumb"), str)):
            raise ValueError("no frame")
    except Exception:
        return "camera_statement_no_frame", None
    capture = fr["time_ms"]
    # 9.8 / 9.9: by the lock's own clock
    if now - capture > settings.max_age_ms:
        return "camera_statement_stale", None
    if capture - now > settings.max_future_ms:
        return "camera_statement_from_future", None
    return None, {"camera": hb.device_id.hex(), "frame_seq": fr["seq"], "capture_ms": capture}


def check_unlock(env, now: int, hub_pk: bytes, lock_id: bytes, highest_downlink: int,
                 door_keys: dict, used_nonces, settings: LockSettings) -> Verdict:
    """Checks 1-10 of §10.3, in order, for a decoded `unlock` envelope. Check 11 (durably
    recording the nonce) is the caller's. Pure: the caller updates its downlink `seq`
    memory when verdict.passed_transport."""
    if not verify_strict(hub_pk, env.signed, env.signature):                 # 1
        return Verdict(1, "bad_signature")
    if env.device_id != lock_id:                                              # 2
        return Verdict(2, "wrong_lock")
    if env.time_ms > now + DOWNLINK_WINDOW_MS:                                # 3
        return Verdict(3, "not_yet_valid")
    if env.time_ms < now - DOWNLINK_WINDOW_MS:                                # 4
        return Verdict(4, "expired")
    if env.seq <= highest_downlink:                                           # 5
        return Verdict(5, "nonce_reused")
    # 6 (a) parses, every member present and of the right type
    try:
        body = jparse(env.body)
    except Exception:
        return Verdict(6, "malformed")
    g, n, x = body.get("grant"), body.get("nonce"), body.get("expires_at_ms")
    cam, waiver = body.get("camera"), body.get("camera_waived")
    if not (isinstance(g, str) and isinstance(n, str) and _is_int(x)
            and (cam is None or isinstance(cam, str))
            and (waiver is None or isinstance(waiver, str))):
        return Verdict(6, "malformed", body)
    # 6 (b) grant 1-256 bytes, nonce 32 lowercase hex
    if not (1 <= len(g.encode("utf-8")) <= 256 and re.fullmatch(r"[0-9a-f]{32}", n)):
        return Verdict(6, "malformed", body)
    # 6 (c) time_ms < expires_at_ms <= time_ms + 120000
    if not (env.time_ms < x <= env.time_ms + MAX_TOKEN_LIFETIME_MS):
        return Verdict(6, "malformed", body)
    if env.time_ms > now + TOKEN_SKEW_MS:                                     # 7
        return Verdict(7, "not_yet_valid", body)
    if now > x + TOKEN_SKEW_MS:                                               # 8
        return Verdict(8, "expired", body)
    reason, evidence = check_camera(body, now, door_keys, settings)           # 9
    if reason is not None:
        return Verdict(9, reason, body)
    if n in used_nonces:                                                      # 10
        return Verdict(10, "nonce_reused", body)
    return Verdict(None, None, body, evidence)


def parse_cameras_body(body: dict, allow_empty_door=False):
    """§9.11: valid whole or not at all. `door_id` 1-64 bytes (empty allowed only for
    the enrolment answer, §10.3); at most 16 keys, each 64 lowercase hex decoding to a
    point; an entry named twice counts once. Returns (door_id, [public key hex]) or
    raises ValueError."""
    door_id, cams = body.get("door_id"), body.get("cameras")
    if not isinstance(door_id, str) or len(door_id.encode("utf-8")) > 64:
        raise ValueError("door_id")
    if not door_id and not allow_empty_door:
        raise ValueError("door_id")
    if not isinstance(cams, list) or len(cams) > MAX_DOOR_CAMERAS:
        raise ValueError("cameras")
    out = []
    for c in cams:
        if not (isinstance(c, str) and re.fullmatch(r"[0-9a-f]{64}", c)):
            raise ValueError("camera key")
        if _decompress(bytes.fromhex(c)) is None:
            raise ValueError("camera key is not a point")
        if c not in out:
            out.append(c)
    return door_id, out


def door_keys_of(keys_hex) -> dict:
    """camera public keys (hex) -> {device id: public key}"""
    out = {}
    for k in keys_hex:
        pk = bytes.fromhex(k)
        out[device_id_of(pk)] = pk
    return out


def cameras_changed_detail(door_id, keys_hex) -> dict:
    """§9.5: `cameras` are the cameras' device ids (32 hex), sorted."""
    return {"door_id": door_id,
            "cameras": sorted({device_id_of(bytes.fromhex(k)).hex() for k in keys_hex})}


# ---------------------------------------------------------------- a tiny JPEG encoder
# Baseline, greyscale, DC-only: each 8x8 block is flat (all AC coefficients zero), so the
# decoded pixels are exactly the block values we chose and the thumbnail is exact.
_DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]  # ITU T.81 Table K.3
_DC_VALS = list(range(12))


def _huff_codes(bits, vals):
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


_DC_CODES = _huff_codes(_DC_BITS, _DC_VALS)


def jpeg_encode_blocks(blocks, bw, bh):
    """blocks: list (row-major, bh rows of bw) of 0..255 block values -> JPEG bytes."""
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    out += b"\xff\xdb\x00\x43\x00" + bytes([1] * 64)  # quant table 0: all ones
    w, h = bw * 8, bh * 8
    out += b"\xff\xc0\x00\x0b\x08" + struct.pack(">HH", h, w) + b"\x01\x01\x11\x00"
    dht_dc = bytes([0x00] + _DC_BITS + _DC_VALS)
    out += b"\xff\xc4" + struct.pack(">H", 2 + len(dht_dc)) + dht_dc
    dht_ac = bytes([0x10] + [1] + [0] * 15 + [0x00])  # one symbol: EOB, code "0"
    out += b"\xff\xc4" + struct.pack(">H", 2 + len(dht_ac)) + dht_ac
    out += b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    acc, nbits, data = 0, 0, bytearray()

    def put(value, length):
        nonlocal acc, nbits
        acc = (acc << length) | (value & ((1 << length) - 1))
        nbits += length
        while nbits >= 8:
            byte = (acc >> (nbits - 8)) & 0xFF
            data.append(byte)
            if byte == 0xFF:
                data.append(0)
            nbits -= 8
        acc &= (1 << nbits) - 1

    prev = 0
    for v in blocks:
        dc = 8 * (int(v) - 128)
        diff = dc - prev
        prev = dc
        cat = abs(diff).bit_length()
        code, ln = _DC_CODES[cat]
        put(code, ln)
        if cat:
            put(diff if diff > 0 else diff + (1 << cat) - 1, cat)
        put(0, 1)  # EOB
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)
    out += data + b"\xff\xd9"
    return bytes(out)


def thumbnail(pixels, w, h):
    """§9.3: pixel (x, y) belongs to cell (floor(8y/H), floor(8x/W)); each byte is the
    mean luma of its cell rounded down; a cell without pixels is 0."""
    sums, counts = [0] * 64, [0] * 64
    for y in range(h):
        r = 8 * y // h
        row = pixels[y]
        for x in range(w):
            i = 8 * r + 8 * x // w
            sums[i] += row[x]
            counts[i] += 1
    return bytes((sums[i] // counts[i]) if counts[i] else 0 for i in range(64))


class SyntheticSensor:
    """A 'camera sensor': a moving gradient rendered as 8x8 flat blocks, JPEG-encoded."""
    BW, BH = 20, 15  # 160 x 120 pixels

    def capture(self, t_ms):
        phase = t_ms / 1000.0
        blocks = []
        for by in range(self.BH):
            for bx in range(self.BW):
                v = 128 + 90 * math.sin(bx * 0.45 + by * 0.3 - phase * 2.0) \
                    + 30 * math.cos(by * 0.7 + phase)
                blocks.append(max(0, min(255, int(round(v)))))
        w, h = self.BW * 8, self.BH * 8
        jpeg = jpeg_encode_blocks(blocks, self.BW, self.BH)
        pixels = [[blocks[(y // 8) * self.BW + x // 8] for x in range(w)] for y in range(h)]
        return jpeg, w, h, thumbnail(pixels, w, h)


# ---------------------------------------------------------------- durable storage
def atomic_write(path, data: bytes):
    # a temporary name per thread: two threads may rewrite the same file at once
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Store:
    def __init__(self, data_dir):
        self.dir = data_dir
        os.makedirs(os.path.join(data_dir, "outbox"), exist_ok=True)
        self.lock = threading.RLock()
        self.counters = self._load("counters.json", {})

    def path(self, name):
        return os.path.join(self.dir, name)

    def _load(self, name, default):
        try:
            with open(self.path(name), "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return default

    def load(self, name, default=None):
        return self._load(name, default)

    def save(self, name, obj):
        atomic_write(self.path(name), json.dumps(obj, indent=1).encode())

    def save_counters(self):
        self.save("counters.json", self.counters)

    # -- key (§3.2)
    def key(self):
        p = self.path("seed")
        if not os.path.exists(p):
            atomic_write(p, os.urandom(32))
            os.chmod(p, 0o600)
        with open(p, "rb") as f:
            return Key(f.read())

    # -- reservation counters (§6.1 / §6.3)
    def reserve_next(self, name, floor):
        """Strictly increasing counter that survives restarts: persisted reservation R."""
        with self.lock:
            st = self.counters.get(name)
            if st is None or "mem" not in st:
                r = (st or {}).get("R", 0)
                nxt = max(r + 1, floor)
                self.counters[name] = st = {"R": nxt + 100000, "mem": nxt}
                self._persist_reservations()
                return nxt
            nxt = st["mem"] + 1
            if nxt >= st["R"]:
                st["R"] = nxt + 100000
                self._persist_reservations()
            st["mem"] = nxt
            return nxt

    def _persist_reservations(self):
        with self.lock:
            on_disk = {k: ({"R": v["R"]} if isinstance(v, dict) and "R" in v else v)
                       for k, v in self.counters.items()}
            atomic_write(self.path("counters.json"), json.dumps(on_disk).encode())

    # -- outbox (§10.1)
    def outbox_dir(self):
        return self.path("outbox")

    def outbox_put(self, log, seq, msg: bytes):
        atomic_write(os.path.join(self.outbox_dir(), f"{log}-{seq:020d}.bin"), msg)

    def outbox_list(self):
        items = []
        for name in os.listdir(self.outbox_dir()):
            m = re.fullmatch(r"(events|frames)-(\d{20})\.bin", name)
            if m:
                items.append((m.group(1), int(m.group(2)), name))
        return items

    def outbox_read(self, name):
        with open(os.path.join(self.outbox_dir(), name), "rb") as f:
            return f.read()

    def outbox_delete(self, name):
        try:
            os.unlink(os.path.join(self.outbox_dir(), name))
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- enrolment over HTTP (§8)
def http_json(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except Exception:
            return e.code, raw.decode(errors="replace")


def enrol(store: Store, key: Key, hub: str, code: str, kind: str):
    code = normalise_code(code)
    req = enrol_request(key, code, kind)
    status, resp = http_json("POST", hub.rstrip("/") + "/api/v1/enrol", req)
    if status != 201:
        raise SystemExit(f"enrolment failed: HTTP {status}: {resp}")
    did = key.device_id.hex()
    if resp.get("device_id") != did or resp.get("mqtt", {}).get("username") != did:
        raise SystemExit("enrolment response names another device id; refusing to use it")
    if not re.fullmatch(r"[0-9a-f]{64}", resp.get("hub_public_key", "")):
        raise SystemExit("enrolment response has no valid hub_public_key")
    resp["_kind"] = kind
    store.save("enrolment.json", resp)
    return resp


# ---------------------------------------------------------------- the device
class Device:
    def __init__(self, args):
        self.args = args
        self.store = Store(args.data_dir)
        self.key = self.store.key()
        self.id = self.key.device_id
        self.idhex = self.id.hex()
        enr = self.store.load("enrolment.json")
        if enr is None:
            if not (args.hub and args.pairing_code and args.kind):
                raise SystemExit("not enrolled: give --hub, --pairing-code and --kind")
            enr = enrol(self.store, self.key, args.hub, args.pairing_code, args.kind)
            log(f"enrolled as {self.idhex} in home {enr['home_id']}")
        self.enr = enr
        self.kind = enr["_kind"]
        if args.kind and args.kind != self.kind:
            raise SystemExit(f"this data dir holds a {self.kind}, not a {args.kind}")
        self.hub_pk = bytes.fromhex(enr["hub_public_key"])
        self.heartbeat_ms = int(enr.get("heartbeat_ms") or 250)
        m = enr["mqtt"]
        prefix = m.get("topic_prefix") or "threshold"
        self.up = f"{prefix}/v1/dev/{self.idhex}/up"
        self.down = f"{prefix}/v1/dev/{self.idhex}/down"
        self.boot_id = os.urandom(16).hex()  # §9.2: new at every start
        self.last_live_time = 0
        self.highest_downlink = 0  # §6.4: in memory, starts at 0
        self.client = None
        self.ready = threading.Event()  # subscribed + hello sent
        self.stop = threading.Event()
        self.lk = threading.RLock()
        self.inflight = {}  # outbox name -> (last_sent_ms, delay_ms)
        self.stats = {"sent": {}, "acked": 0, "downlinks": {}, "dropped_downlinks": {}}
        self.link_up_since = None
        self.last_rx_ms = None
        self.connected_once = False
        # camera
        self.sensor = SyntheticSensor()
        self.newest_frame = None  # dict(seq,time_ms,sha256,thumb,jpeg,w,h)
        self.stream_until = 0
        self.stream_fps = 0
        self.last_streamed_seq = 0
        self.outage_stream = False
        # lock (simulated hardware)
        self.hw = self.store.load("lock_hw.json", {"bolt": "unlocked", "door": "closed"})
        self.nonces = self.store.load("nonces.json", {})  # nonce -> expires_at_ms
        self.unlocked_at = None
        self.door_opened_since_unlock = False
        self.relock_pending = None
        # event counter: max(persisted, highest seq still in the outbox)
        ev = [s for (lg, s, _) in self.store.outbox_list() if lg == "events"]
        self.event_seq = max([self.store.counters.get("event_seq", 0)] + ev)
        # lock: its own camera settings and the camera set of its door (§10.3)
        self.lock_settings = LockSettings(
            getattr(args, "camera_statement_max_age_ms", None) or STATEMENT_MAX_AGE_MS,
            getattr(args, "camera_statement_max_future_ms", None) or STATEMENT_MAX_FUTURE_MS,
            not getattr(args, "refuse_camera_waiver", False))
        self.door_id, self.door_cameras, self.door_keys = "", [], {}
        if self.kind == "lock":
            self.load_camera_set()

    # ------------------------------------------------------------ helpers
    def live_time(self):
        t = max(now_ms(), self.last_live_time)  # §7: never backwards
        self.last_live_time = t
        return t

    def outbox_stats(self):
        items = self.store.outbox_list()
        size = 0
        for (_, _, name) in items:
            try:
                size += os.path.getsize(os.path.join(self.store.outbox_dir(), name))
            except FileNotFoundError:
                pass
        return {"records": len(items), "bytes": size}

    def count(self, kind):
        self.stats["sent"][kind] = self.stats["sent"].get(kind, 0) + 1

    def publish_live(self, kind, body: dict):
        """Live messages: published when made or not at all (§2.3)."""
        c = self.client
        if c is None or not self.ready.is_set() and kind != "hello":
            return False
        seq = self.store.reserve_next("transport", now_ms() * 1000)
        msg = encode(self.key, KINDS[kind], self.id, seq, self.live_time(), jdump(body))
        info = c.publish(self.up, msg, qos=1, retain=False)
        if info.rc != 0:
            return False
        self.count(kind)
        return True

    # ------------------------------------------------------------ records
    def record_event(self, etype, detail=None):
        with self.lk:
            self.event_seq += 1
            seq = self.event_seq
            msg = encode(self.key, KINDS["event"], self.id, seq, now_ms(),
                         jdump({"type": etype, "detail": detail or {}}))
            # number assignment and the record are written together: outbox file first,
            # then the counter; on start the counter is max(counter, outbox).
            self.store.outbox_put("events", seq, msg)
            self.store.counters["event_seq"] = seq
            self.store._persist_reservations()
        log(f"event #{seq} {etype} {json.dumps(detail or {})}")
        # §10.1 puts new events ahead of the outbox backlog, but sending event N while
        # N-1 still waits in the outbox makes the hub open (and alert on) a gap. Keep the
        # event log in order: send now only if no older event is waiting to be (re)sent.
        with self.lk:
            older = [n for (lg, s, n) in self.store.outbox_list()
                     if lg == "events" and s < seq and n not in self.inflight]
        if not older:
            self.send_record("events", seq, msg)
        return seq

    def record_frame(self, fr):
        hdr = {"width": fr["w"], "height": fr["h"], "sha256": fr["sha256"], "thumb": fr["thumb"]}
        msg = encode(self.key, KINDS["frame"], self.id, fr["seq"], fr["time_ms"],
                     frame_body(hdr, fr["jpeg"]))
        self.store.outbox_put("frames", fr["seq"], msg)
        self.send_record("frames", fr["seq"], msg)

    def send_record(self, log_name, seq, msg):
        name = f"{log_name}-{seq:020d}.bin"
        c = self.client
        with self.lk:
            if c is None or not self.ready.is_set():
                return
            if len(self.inflight) >= 64 and name not in self.inflight:
                return  # the resend loop will pick it up
            info = c.publish(self.up, msg, qos=1, retain=False)
            if info.rc == 0:
                prev = self.inflight.get(name)
                delay = 10000 if prev is None else min(prev[1] * 2, 60000)
                self.inflight[name] = (now_ms(), delay)
                self.count("frame" if log_name == "frames" else "event")

    def resend_loop(self):
        """Outbox: oldest first, events before frames, at most 64 unacked in flight."""
        while not self.stop.is_set():
            time.sleep(0.2)
            if not self.ready.is_set():
                continue
            items = sorted(self.store.outbox_list(), key=lambda t: (t[0] != "events", t[1]))
            t = now_ms()
            for (lg, seq, name) in items:
                with self.lk:
                    st = self.inflight.get(name)
                    if st is not None and t - st[0] < st[1]:
                        continue
                    if st is None and len(self.inflight) >= 64:
                        break
                try:
                    msg = self.store.outbox_read(name)
                except FileNotFoundError:
                    continue
                if st is not None:
                    log(f"re-sending {name} (unacked {t - st[0]} ms)")
                self.send_record(lg, seq, msg)

    # ------------------------------------------------------------ downlinks (§10.1)
    def on_down(self, payload: bytes):
        self.last_rx_ms = now_ms()
        try:
            env = decode(payload)
        except DecodeError as e:
            return self.drop(e.reason)
        if env.kind not in DOWNLINK_KINDS:
            return self.drop("not_downlink")
        if env.kind == KINDS["unlock"] and self.kind == "lock":
            return self.on_unlock(env)
        if not verify_strict(self.hub_pk, env.signed, env.signature):
            return self.drop("bad_signature")
        if env.device_id != self.id:
            return self.drop("wrong_device")
        if abs(env.time_ms - now_ms()) > DOWNLINK_WINDOW_MS:
            return self.drop("time_window")
        with self.lk:
            if env.seq <= self.highest_downlink:
                return self.drop("seq_replay")
            self.highest_downlink = env.seq
        try:
            body = jparse(env.body)
        except Exception:
            return self.drop("bad_body")
        kname = KIND_NAMES[env.kind]
        self.stats["downlinks"][kname] = self.stats["downlinks"].get(kname, 0) + 1
        if kname == "ack":
            self.on_ack(body)
        elif kname == "stream" and self.kind == "camera":
            self.on_stream(body)
        elif kname == "lock" and self.kind == "lock":
            self.on_lock_cmd(body)
        elif kname == "cameras" and self.kind == "lock":
            self.on_cameras(body)
        # other downlinks: accepted and ignored

    def drop(self, why):
        self.stats["dropped_downlinks"][why] = self.stats["dropped_downlinks"].get(why, 0) + 1
        log(f"downlink dropped: {why}")

    def on_ack(self, body):
        ranges = {}
        for lg in ("events", "frames"):
            v = body.get(lg)
            if v is None:
                v = []
            if not isinstance(v, list):
                return self.drop("bad_ack")
            rs = []
            for r in v:
                if not (isinstance(r, list) and len(r) == 2 and all(_is_uint(x) for x in r)):
                    return self.drop("bad_ack")
                if r[0] <= r[1]:
                    rs.append((r[0], r[1]))
            ranges[lg] = rs
        n = 0
        for (lg, seq, name) in self.store.outbox_list():
            if any(a <= seq <= b for (a, b) in ranges[lg]):
                self.store.outbox_delete(name)
                with self.lk:
                    self.inflight.pop(name, None)
                n += 1
        self.stats["acked"] += n
        if self.args.verbose:
            log(f"ack events={ranges['events']} frames={ranges['frames']} -> deleted {n}")

    # ------------------------------------------------------------ camera
    def on_stream(self, body):
        u, fps = body.get("until_ms"), body.get("fps")
        if not (_is_int(u) and _is_int(fps)):
            return self.drop("bad_stream")
        fps = max(1, min(30, fps))
        first = self.stream_until < now_ms() and u > now_ms()
        self.stream_until, self.stream_fps = u, fps
        if first:
            log(f"stream requested until {u} at {fps} fps")

    def capture_loop(self):
        period = 1.0 / self.args.capture_fps
        while not self.stop.is_set():
            t = now_ms()
            seq = self.store.reserve_next("frame", 1)
            jpeg, w, h, thumb = self.sensor.capture(t)
            fr = {"seq": seq, "time_ms": t, "jpeg": jpeg, "w": w, "h": h,
                  "sha256": hashlib.sha256(jpeg).hexdigest(), "thumb": thumb.hex()}
            self.newest_frame = fr
            if not self.ready.is_set() and self.outage_stream:
                # §10.2: the link is down during a stream: keep marking frames for upload
                self.maybe_stream(fr, force=True)
            time.sleep(max(0.0, period - (now_ms() - t) / 1000.0))

    def maybe_stream(self, fr, force=False):
        t = now_ms()
        if not force and t > self.stream_until:
            return
        if fr["seq"] <= self.last_streamed_seq:
            return
        self.last_streamed_seq = fr["seq"]
        self.record_frame(fr)

    def stream_loop(self):
        nxt = 0.0
        while not self.stop.is_set():
            time.sleep(0.02)
            if not self.ready.is_set() or self.newest_frame is None:
                continue
            if now_ms() > self.stream_until or self.stream_fps <= 0:
                continue
            if time.monotonic() < nxt:
                continue
            nxt = time.monotonic() + 1.0 / self.stream_fps
            self.maybe_stream(self.newest_frame)

    def heartbeat_body(self):
        """§9.3. A camera's heartbeat is also its liveness statement (§9.9): the hub puts
        these exact signed bytes into `unlock.camera`, and the lock accepts them only if
        they decode as a `heartbeat` of at most 2048 bytes that announces a `frame` whose
        `time_ms` is the capture time on a synchronised clock (§10.3 check 9). So the
        heartbeat carries exactly the members of §9.3 and nothing else."""
        body = {}
        if self.kind == "camera":
            fr = self.newest_frame
            if fr is not None:
                body["frame"] = {"seq": fr["seq"], "time_ms": fr["time_ms"],
                                 "sha256": fr["sha256"], "thumb": fr["thumb"]}
        body["outbox"] = self.outbox_stats()
        if HEADER_LEN + len(jdump(body)) + SIGNATURE_LEN > MAX_STATEMENT_BYTES:
            # cannot happen with the members above; never send a statement no lock accepts
            raise ValueError("heartbeat larger than a usable camera statement")
        return body

    # ------------------------------------------------------------ lock
    def state_body(self):
        b = {"bolt": self.hw["bolt"]}
        if self.args.door_sensor:
            b["door"] = self.hw["door"]
        b["outbox"] = self.outbox_stats()
        return b

    def set_hw(self, **kw):
        self.hw.update(kw)
        self.store.save("lock_hw.json", self.hw)
        if self.ready.is_set():
            self.publish_live("state", self.state_body())  # immediately after any change

    def refuse(self, reason, body=None):
        detail = {"reason": reason}
        if isinstance(body, dict):
            for k in ("grant", "nonce"):
                v = body.get(k)
                if isinstance(v, str):
                    detail[k] = v.encode()[:256].decode("utf-8", "ignore")
        log(f"unlock token REFUSED: {reason}")
        self.record_event("token_refused", detail)

    def on_unlock(self, env):
        """§10.3: the eleven token checks, in order, then acting on the token."""
        now = now_ms()
        with self.lk:
            v = check_unlock(env, now, self.hub_pk, self.id, self.highest_downlink,
                             self.door_keys, self.nonces, self.lock_settings)
            if v.passed_transport:
                self.highest_downlink = max(self.highest_downlink, env.seq)
        if v.check is not None:
            # checks 1-5: the body was not read, so no grant/nonce (§9.5)
            return self.refuse(v.reason, v.body if v.check >= 6 else None)
        self.stats["downlinks"]["unlock"] = self.stats["downlinks"].get("unlock", 0) + 1
        body = v.body
        g, n, x = body["grant"], body["nonce"], body["expires_at_ms"]
        # 11: record the nonce durably, with the token_accepted event, before the bolt moves
        detail = dict(sorted(dict(v.evidence, grant=g, nonce=n).items()))
        try:
            self.nonces[n] = x
            t = now_ms()
            if len(self.nonces) > 1000:  # keep >= 1000; drop only tokens long expired
                for k in [k for k, e in self.nonces.items() if t > e + TOKEN_SKEW_MS + 60000]:
                    if len(self.nonces) <= 1000:
                        break
                    del self.nonces[k]
            self.store.save("nonces.json", self.nonces)
            self.record_event("token_accepted", detail)
        except OSError as e:
            log(f"nonce store write failed: {e}")
            self.nonces.pop(n, None)
            return self.refuse("storage_error", body)
        log(f"unlock token ACCEPTED grant={g} nonce={n} " + json.dumps(v.evidence))
        if self.args.door_sensor is None:  # selftest
            return self.retract()
        threading.Thread(target=self.retract, daemon=True).start()

    # ------------------------------------------------------------ lock: door cameras
    def load_camera_set(self):
        """§10.3 "The camera set": load it at start; at the first start after pairing
        take `door_id` / `door_cameras` from the enrolment answer (and record it)."""
        st = self.store.load("cameras.json")
        if st is not None:
            # a stored set that breaks §9.11 counts as no camera (§10.3)
            try:
                self.door_id, self.door_cameras = parse_cameras_body(st, allow_empty_door=True)
            except (ValueError, AttributeError) as e:
                log(f"stored camera set invalid ({e}); no camera until the hub sends one")
                self.door_id, self.door_cameras = st.get("door_id", "") if isinstance(st, dict) else "", []
            self.door_keys = door_keys_of(self.door_cameras)
            log(f"door {self.door_id!r}: {len(self.door_cameras)} camera(s) (stored)")
            return
        door_id = self.enr.get("door_id") or ""
        cams = self.enr.get("door_cameras") or []
        if not door_id and not cams:
            # §10.3: no set and nothing recorded; the hub's cameras message brings one
            log("enrolment answer names no door and no camera; waiting for the hub")
            return
        try:
            door_id, cams = parse_cameras_body({"door_id": door_id, "cameras": cams},
                                               allow_empty_door=True)
        except ValueError as e:
            # §10.3: door_cameras that break §9.11 count as no camera
            log(f"enrolment answer has an invalid door_id/door_cameras ({e}); using none")
            door_id, cams = (door_id if isinstance(door_id, str) else ""), []
        self.set_camera_set(door_id, cams, first=True)

    def set_camera_set(self, door_id, cams, first=False):
        changed = first or door_id != self.door_id or set(cams) != set(self.door_cameras)
        if changed:
            # the event comes before the new set is stored (§10.3)
            self.record_event("cameras_changed", cameras_changed_detail(door_id, cams))
        self.store.save("cameras.json", {"door_id": door_id, "cameras": cams})
        self.door_id, self.door_cameras, self.door_keys = door_id, cams, door_keys_of(cams)
        if changed:
            log(f"door {door_id!r}: now {len(cams)} camera(s)")

    def on_cameras(self, body):
        """§9.11: replace the set, durably."""
        try:
            door_id, cams = parse_cameras_body(body)
        except ValueError as e:
            return self.drop(f"bad_cameras:{e}")
        try:
            self.set_camera_set(door_id, cams)
        except OSError as e:
            log(f"could not store the camera set: {e}; keeping the previous one")

    def retract(self):
        self.set_hw(bolt="moving")
        time.sleep(0.3)
        self.set_hw(bolt="unlocked")
        self.record_event("bolt_unlocked")
        self.unlocked_at = now_ms()
        self.door_opened_since_unlock = False
        if self.args.simulate_entry and self.args.door_sensor:
            threading.Thread(target=self.simulated_visit, daemon=True).start()

    def simulated_visit(self):
        time.sleep(1.5)
        if self.hw["bolt"] != "unlocked":
            return  # relocked meanwhile (e.g. a `lock` command): nobody can open the door
        self.set_hw(door="open")
        self.record_event("door_opened")
        self.door_opened_since_unlock = True
        time.sleep(3.0)
        self.set_hw(door="closed")
        self.record_event("door_closed")

    def throw_bolt(self, rule):
        if rule == "command" and self.hw["bolt"] == "locked":
            return
        if self.args.door_sensor and self.hw["door"] != "closed":
            self.relock_pending = rule
            return
        self.relock_pending = None
        self.record_event("relocked", {"rule": rule})
        self.set_hw(bolt="moving")
        time.sleep(0.3)
        self.set_hw(bolt="locked")
        self.record_event("bolt_locked")
        self.unlocked_at = None

    def on_lock_cmd(self, body):
        if not isinstance(body.get("reason"), str):
            return self.drop("bad_lock")
        log(f"lock command: {body['reason']}")
        threading.Thread(target=self.throw_bolt, args=("command",), daemon=True).start()

    def relock_loop(self):
        timeout = self.args.unlock_timeout_ms
        if self.hw["bolt"] != "locked":
            self.throw_bolt("startup")
        while not self.stop.is_set():
            time.sleep(0.1)
            if self.relock_pending and self.hw["door"] == "closed":
                self.throw_bolt(self.relock_pending)
                continue
            if self.hw["bolt"] != "unlocked" or self.unlocked_at is None:
                continue
            if self.args.door_sensor and self.door_opened_since_unlock and self.hw["door"] == "closed":
                time.sleep(0.5)  # debounce
                self.throw_bolt("door_closed")
            elif not self.door_opened_since_unlock and now_ms() - self.unlocked_at > timeout:
                self.throw_bolt("unlock_timeout")

    # ------------------------------------------------------------ MQTT (§2)
    def periodic_loop(self):
        period = self.heartbeat_ms / 1000.0
        nxt = time.monotonic()
        while not self.stop.is_set():
            nxt += period
            if self.ready.is_set():
                if self.kind == "camera":
                    self.publish_live("heartbeat", self.heartbeat_body())
                else:
                    self.publish_live("state", self.state_body())
            time.sleep(max(0.0, nxt - time.monotonic()))
            if nxt < time.monotonic() - 1:
                nxt = time.monotonic()

    def connect_loop(self):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        m = self.enr["mqtt"]
        backoff = 0.25
        while not self.stop.is_set():
            state = {"rc": None, "closed": threading.Event()}
            c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                            client_id=self.idhex, protocol=mqtt.MQTTv5)
            c.username_pw_set(m["username"], m["password"])
            c.max_inflight_messages_set(100)

            def on_connect(cl, ud, flags, rc, props, state=state):
                state["rc"] = rc
                if rc.is_failure:
                    return
                self.last_rx_ms = now_ms()
                cl.subscribe(self.down, qos=1)

            def on_subscribe(cl, ud, mid, rcs, props):
                if any(r.is_failure for r in rcs):
                    log(f"SUBACK failure {rcs}")
                    cl.disconnect()
                    return
                self.client = cl
                self.publish_live("hello", {"agent": AGENT, "kind": self.kind,
                                            "boot_id": self.boot_id})
                self.ready.set()
                log(f"connected; subscribed {self.down}; hello sent")
                if self.connected_once and self.args.link_events:
                    self.record_event("link_restored", {"at_ms": self.link_up_since})
                self.connected_once = True
                if self.outage_stream:
                    # keep streaming 5 s more after an outage that happened during a stream
                    self.stream_until = max(self.stream_until, now_ms() + 5000)
                    self.outage_stream = False

            def on_message(cl, ud, msg):
                try:
                    self.on_down(msg.payload)
                except Exception as e:  # never let a bad downlink kill the client
                    log(f"downlink handler error: {e!r}")

            def on_publish(cl, ud, mid, rc, props):
                self.last_rx_ms = now_ms()  # a PUBACK is a packet from the broker

            def on_disconnect(cl, ud, flags, rc, props, state=state):
                state["closed"].set()

            c.on_connect = on_connect
            c.on_subscribe = on_subscribe
            c.on_message = on_message
            c.on_disconnect = on_disconnect
            c.on_publish = on_publish
            try:
                c.connect(m["host"], int(m["port"]), keepalive=5, clean_start=True)
            except OSError as e:
                log(f"connect failed: {e}; retry in {backoff:.2f}s")
                time.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 5.0)
                continue
            c.loop_start()
            self.link_up_since = now_ms()
            while not state["closed"].wait(0.2):
                if self.stop.is_set() or self._bounce_now():
                    break
            was_ready = self.ready.is_set()
            self.ready.clear()
            self.client = None
            lost_from = self.last_rx_ms
            c.disconnect()
            c.loop_stop()
            with self.lk:
                self.inflight.clear()
            rc = state["rc"]
            if rc is not None and rc.is_failure and rc.value in (0x86, 0x87):
                log(f"broker refused us ({rc}); the device may have been revoked; retry in 60 s")
                self.stop.wait(60)
                continue
            if self.stop.is_set():
                break
            log(f"link lost (connack={rc}); reconnecting")
            if was_ready:
                if self.kind == "camera" and now_ms() <= self.stream_until:
                    self.outage_stream = True
                    if self.newest_frame is not None:  # the frame captured just before
                        self.maybe_stream(self.newest_frame, force=True)
                if self.args.link_events:
                    self.record_event("link_lost", {"from_ms": lost_from or now_ms()})
                backoff = 0.25
            time.sleep(self.args.bounce_pause if self._bounced else backoff * (0.5 + random.random()))
            self._bounced = False
            backoff = min(backoff * 2, 5.0)

    _bounced = False

    def _bounce_now(self):
        b = self.args.bounce_after
        if b and not self._bounce_done and time.monotonic() - self.t0 > b:
            self._bounce_done = True
            self._bounced = True
            log("bouncing the broker connection (simulated outage)")
            return True
        return False

    def run(self):
        self.t0 = time.monotonic()
        self._bounce_done = False
        log(f"{self.kind} {self.idhex} starting (boot_id {self.boot_id}, heartbeat {self.heartbeat_ms} ms)")
        threads = [self.connect_loop, self.periodic_loop, self.resend_loop]
        if self.kind == "camera":
            threads += [self.capture_loop, self.stream_loop]
        else:
            threads += [self.relock_loop]
        for fn in threads:
            threading.Thread(target=fn, daemon=True, name=fn.__name__).start()
        if self.kind == "lock" and self.args.door_sensor is False:
            pass
        try:
            end = time.monotonic() + self.args.duration if self.args.duration else None
            while not self.stop.is_set():
                time.sleep(1.0)
                if end and time.monotonic() > end:
                    break
        except KeyboardInterrupt:
            pass
        self.stop.set()
        time.sleep(0.5)
        log("stats " + json.dumps(self.stats) + " outbox " + json.dumps(self.outbox_stats()))
        self.store.save("last_stats.json", {"stats": self.stats, "outbox": self.outbox_stats()})


_QUIET = False


def log(s):
    if _QUIET:
        return
    print(time.strftime("%H:%M:%S") + f".{now_ms() % 1000:03d} {s}", flush=True)


# ---------------------------------------------------------------- self-test (§15)
def parse_vectors(doc_text):
    blocks = re.findall(r"```text\n(.*?)```", doc_text, re.S)
    out = []
    for b in blocks:
        # key lists hold several records separated by blank lines
        for rec in re.split(r"\n\s*\n", b.strip()):
            lines = rec.strip().split("\n")
            first = lines[0]
            if not re.match(r"(vector|key|layout): ", first):
                continue
            if first.startswith("layout: "):
                out.append({"layout": first[8:], "rows": lines[1:]})
                continue
            d = {}
            for ln in lines:
                k, _, v = ln.partition(": ")
                d[k] = v
            out.append(d)
    return out


def selftest(doc_path, verbose=False):
    global _QUIET
    _QUIET = not verbose
    with open(doc_path, encoding="utf-8") as f:
        vecs = parse_vectors(f.read())
    fails, checks = [], 0

    def check(cond, what):
        nonlocal checks
        checks += 1
        if not cond:
            fails.append(what)
            print("FAIL", what)

    keys = {}
    for v in vecs:
        if "key" in v:
            k = Key(bytes.fromhex(v["seed"]))
            keys[v["key"]] = k
            check(k.public.hex() == v["public_key"], f"key {v['key']} public key")
            if "device_id" in v:
                check(k.device_id.hex() == v["device_id"], f"key {v['key']} device id")
    hub_pk = keys["hub"].public
    nvec = 0
    msgs = {}
    vec_by_name = {v["vector"]: v for v in vecs if "vector" in v}
    for v in vecs:
        if "vector" not in v:
            continue
        name = v["vector"]
        k = Key(bytes.fromhex(v["seed"]))
        check(k.public.hex() == v["public_key"], f"{name}: public key")
        if name == "enrol-proof":
            code = normalise_code(v["pairing_code"])
            check(code == v["pairing_code"], "enrol-proof: code normalisation")
            pm = f"threshold-enrol-v1:{code}:{k.public.hex()}"
            check(pm == v["proof_message"], "enrol-proof: proof message")
            check(pm.encode().hex() == v["proof_message_hex"], "enrol-proof: proof hex")
            req = enrol_request(k, code, v["device_kind"])
            check(req["proof"] == v["signature_hex"], "enrol-proof: signature")
            check(jdump(req).decode() == v["request"], "enrol-proof: request body")
            check(k.device_id.hex() == v["device_id"], "enrol-proof: device id")
            nvec += 1
            continue
        if name == "renew-proof":
            # §8.6: the device signs the hub's challenge nonce for its own id.
            check(k.device_id.hex() == v["device_id"], "renew-proof: device id")
            pm = f"threshold-renew-v1:{k.device_id.hex()}:{v['nonce']}"
            check(pm == v["proof_message"], "renew-proof: proof message")
            check(pm.encode().hex() == v["proof_message_hex"], "renew-proof: proof hex")
            sig = k.sign(pm.encode("ascii")).hex()
            check(sig == v["signature_hex"], "renew-proof: signature")
            req = {"nonce": v["nonce"], "signature": sig}
            check(jdump(req).decode() == v["request"], "renew-proof: request body")
            nvec += 1
            continue
        kind = KINDS[v["kind"]]
        check(kind == int(v["kind_code"]), f"{name}: kind code")
        if v["kind"] == "frame":
            hdr = v["frame_header"].encode()
            jpeg = bytes.fromhex(v["jpeg_hex"])
            body = struct.pack(">I", len(hdr)) + hdr + jpeg
            check(body.hex() == v["body_hex"], f"{name}: frame body")
            hj = jparse(hdr)
            check(hj["sha256"] == hashlib.sha256(jpeg).hexdigest(), f"{name}: jpeg sha256")
            # re-serialising the parsed header with our serializer gives the same bytes
            check(frame_body(hj, jpeg) == body, f"{name}: frame_body() reproduces body")
        else:
            body = v["body"].encode()
            # our own compact serializer reproduces the body text exactly
            check(jdump(jparse(body)) == body, f"{name}: jdump reproduces body")
        check(len(body) == int(v["body_len"]), f"{name}: body_len")
        msg = encode(k, kind, bytes.fromhex(v["device_id"]), int(v["seq"]), int(v["time_ms"]), body)
        check(len(msg) == int(v["message_len"]), f"{name}: message_len")
        check(msg.hex() == v["message_hex"], f"{name}: message bytes")
        check(msg[-64:].hex() == v["signature_hex"], f"{name}: signature")
        env = decode(bytes.fromhex(v["message_hex"]))
        check(verify_strict(k.public, env.signed, env.signature), f"{name}: verifies with its key")
        if kind in DOWNLINK_KINDS:
            ok = verify_strict(hub_pk, env.signed, env.signature)
            check(ok == ("expect" not in v), f"{name}: hub-key verification result")
            if "expect" in v:
                check(v["expect"] == "bad_signature", f"{name}: expect")
        msgs[name] = msg
        nvec += 1
    for v in vecs:
        if "layout" in v:
            m = msgs[v["layout"]]
            for row in v["rows"]:
                off, size, hx = row.split(" ")[:3]
                check(m[int(off):int(off) + int(size)].hex() == hx, f"layout {v['layout']} @{off}")

    # decoder refusals (§4.3), strict verification corner cases (§3.5)
    hb = msgs["heartbeat"]
    for bad, reason in [(hb[:105], "truncated"), (b"THR2" + hb[4:], "bad_magic"),
                        (hb[:4] + b"\x05" + hb[5:], "unknown_kind"),
                        (hb[:5] + b"\x01" + hb[6:], "bad_flags"), (hb + b"\x00", "length_mismatch"),
                        (b"\x00" * (MAX_MESSAGE_BYTES + 1), "too_large")]:
        try:
            decode(bad)
            check(False, f"decode refuses {reason}")
        except DecodeError as e:
            check(e.reason == reason, f"decode refuses {reason} (got {e.reason})")
    cam = keys["camera"]
    e = decode(hb)
    s = int.from_bytes(e.signature[32:], "little")
    malleated = e.signature[:32] + (s + _L).to_bytes(32, "little")
    check(not verify_strict(cam.public, e.signed, malleated), "non-canonical S refused")
    ident = (1).to_bytes(32, "little")  # the identity point, small order
    check(is_small_order(ident), "identity is small order")
    check(not is_small_order(cam.public), "camera key is not small order")
    check(not verify_strict(ident, b"x", ident + bytes(32)), "small-order A/R refused")

    # the statements inside the vectors are the camera's own messages
    ubody = jparse(vec_by_name["unlock"]["body"].encode())
    check(b64decode_strict(ubody["camera"]) == msgs["heartbeat"],
          "unlock: its statement is the heartbeat vector's message")
    nh = jparse(vec_by_name["unlock-statement-not-heartbeat"]["body"].encode())
    check(b64decode_strict(nh["camera"]) == msgs["hello"],
          "unlock-statement-not-heartbeat: its statement is the hello vector's message")
    check(b64decode_strict(ubody["camera"][:-1]) is None, "base64 without padding refused")
    check(b64decode_strict(" " + ubody["camera"]) is None, "base64 with white space refused")
    check(b64decode_strict("QR==") is None, "base64 with non-canonical trailing bits refused")

    # §10.3 checks 1-10 (pure function) against every unlock vector with a lock_expect:
    # the stated lock clock and bound cameras, a fresh downlink seq memory, an empty
    # nonce store; checks 1-8 must pass and the outcome of check 9 must be lock_expect.
    lock_id = keys["lock"].device_id
    seen = set()
    for v in vecs:
        if "lock_expect" not in v:
            continue
        seen.add(v["lock_expect"])
        name = v["vector"]
        door = door_keys_of([k for k in v["bound_cameras"].split(",") if k])
        st = LockSettings(allow_waiver=v.get("lock_allow_waiver", "yes") != "no")
        r = check_unlock(decode(msgs[name]), int(v["lock_time_ms"]), hub_pk, lock_id, 0,
                         door, set(), st)
        got = "accepted" if r.check is None else r.reason
        check(got == v["lock_expect"], f"{name}: lock outcome {got}, document says {v['lock_expect']}")
        check(r.check in (None, 9), f"{name}: refused at check {r.check}, not check 9")
        print(f"lock check 9  {name:32} now={v['lock_time_ms']}  -> {got}")
    # the bounds themselves (the vectors sit 1 ms past them): age 3000 and future 2000 pass
    cam_door = door_keys_of([keys["camera"].public.hex()])
    cap = 1700000000200  # frame.time_ms of the heartbeat vector
    for t, want in [(cap + 3000, None), (cap + 3001, "camera_statement_stale"),
                    (cap - 2000, None), (cap - 2001, "camera_statement_from_future")]:
        got = check_camera(ubody, t, cam_door, LockSettings())[0]
        check(got == want, f"check 9 at lock time capture{t - cap:+d} ms: {got}, want {want}")
    check(check_camera(dict(ubody, camera_waived=None), 1700000003050, cam_door,
                       LockSettings())[0] is None, "camera_waived null counts as absent")
    check(check_camera({"camera_waived": "guest_grant"}, 0, {}, LockSettings())[1]
          == {"camera_waived": "guest_grant"}, "guest_grant waiver passes")
    check(check_camera({"camera": ""}, 0, cam_door, LockSettings())[0]
          == "camera_statement_malformed", "empty statement is malformed")

    # §10.3 says these vectors "exercise every reason of check 9"
    every = {"accepted", "malformed", "camera_waiver_refused", "camera_statement_missing",
             "camera_statement_malformed", "camera_not_bound", "camera_statement_bad_signature",
             "camera_statement_no_frame", "camera_statement_stale", "camera_statement_from_future"}
    check(seen == every, f"lock_expect vectors cover every check-9 outcome (missing {every - seen})")

    # the whole lock, on disk: enrolment answer -> camera set, the `cameras` vector through
    # the downlink path, every unlock vector through on_unlock, and the token_accepted
    # event it records, byte for byte against the event-token-accepted vector.
    import argparse as _ap
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="tp-selftest-")
    global now_ms
    real = now_ms
    try:
        lk = keys["lock"]
        with open(os.path.join(tmp, "seed"), "wb") as f:
            f.write(lk.seed)
        cam_pk = keys["camera"].public.hex()
        enr = {"device_id": lk.device_id.hex(), "home_id": "home_test",
               "hub_public_key": hub_pk.hex(),
               "mqtt": {"host": "127.0.0.1", "port": 1, "username": lk.device_id.hex(),
                        "password": "x", "topic_prefix": "threshold"},
               "heartbeat_ms": 250, "door_id": "front-door", "door_cameras": [], "_kind": "lock"}
        atomic_write(os.path.join(tmp, "enrolment.json"), json.dumps(enr).encode())
        args = _ap.Namespace(data_dir=tmp, kind="lock", hub=None, pairing_code=None,
                             door_sensor=None, simulate_entry=False, verbose=False,
                             camera_statement_max_age_ms=None,
                             camera_statement_max_future_ms=None, refuse_camera_waiver=False)

        def events(d):
            out = []
            for (lg, sq, nm) in sorted(d.store.outbox_list(), key=lambda t: t[1]):
                if lg == "events":
                    e = decode(d.store.outbox_read(nm))
                    out.append((sq, e.time_ms, json.loads(e.body), d.store.outbox_read(nm)))
            return out

        now_ms = lambda: 1700000000050
        dev = Device(args)
        dev.retract = lambda: None
        ev = events(dev)
        check([e[2] for e in ev] == [{"type": "cameras_changed",
                                      "detail": {"door_id": "front-door", "cameras": []}}],
              f"first start records cameras_changed from the enrolment answer: {ev}")
        # `cameras` vector through the ordinary downlink checks (its own time)
        now_ms = lambda: 1700000000100
        dev.on_down(msgs["cameras"])
        ev = events(dev)
        want = {"type": "cameras_changed",
                "detail": {"door_id": "front-door", "cameras": [keys["camera"].device_id.hex()]}}
        check(len(ev) == 2 and ev[-1][2] == want, f"cameras message recorded: {ev[-1][2]}")
        check(dev.store.load("cameras.json") == {"door_id": "front-door", "cameras": [cam_pk]},
              "camera set stored")
        dev.highest_downlink = 0
        dev.on_down(msgs["cameras"])  # the same set again: not a change
        check(len(events(dev)) == 2, "the same cameras set again records nothing")
        dev.on_down(msgs["cameras"])  # the same seq again: a replayed downlink, dropped
        check(dev.stats["dropped_downlinks"].get("seq_replay") == 1, "replayed cameras dropped")
        # a restart loads the set without recording anything
        dev = Device(args)
        dev.retract = lambda: None
        check(len(events(dev)) == 2 and dev.door_cameras == [cam_pk], "restart loads the set")

        refused = []
        orig_refuse = dev.refuse
        dev.refuse = lambda reason, body=None: (refused.append(reason), orig_refuse(reason, body))
        for v in vecs:
            if "lock_expect" not in v:
                continue
            name = v["vector"]
            dev.lock_settings = LockSettings(allow_waiver=v.get("lock_allow_waiver") != "no")
            dev.highest_downlink, dev.nonces, refused[:] = 0, {}, []
            before = len(events(dev))
            now_ms = (lambda t: (lambda: t))(int(v["lock_time_ms"]))
            if name == "unlock":
                dev.event_seq = 40  # so that the record is event 41 of the vector
            dev.on_down(msgs[name])
            ev = events(dev)
            added = ev[before:]
            if v["lock_expect"] == "accepted":
                ok = (len(added) == 1 and added[0][2]["type"] == "token_accepted"
                      and "101112131415161718191a1b1c1d1e1f" in dev.nonces and not refused)
                check(ok, f"{name}: lock accepts ({added}, refused {refused})")
                if name == "unlock":
                    check(added[0][3] == msgs["event-token-accepted"],
                          "unlock: the lock's token_accepted record is the event-token-accepted "
                          "vector, byte for byte")
                if name == "unlock-waived":
                    check(added[0][2]["detail"] == {"camera_waived": "owner_override",
                                                    "grant": "delivery:d-1001",
                                                    "nonce": "101112131415161718191a1b1c1d1e1f"},
                          f"unlock-waived: token_accepted detail {added[0][2]['detail']}")
            else:
                d = added[0][2]["detail"] if added else {}
                check(refused == [v["lock_expect"]] and len(added) == 1
                      and added[0][2]["type"] == "token_refused"
                      and d == {"reason": v["lock_expect"], "grant": "delivery:d-1001",
                                "nonce": "101112131415161718191a1b1c1d1e1f"}
                      and not dev.nonces,
                      f"{name}: lock refuses {v['lock_expect']} (got {refused}, {d})")

        # other paths of on_unlock, with a fake clock
        def run(name, t, reset_seq=True, reset_nonces=False):
            nonlocal now_ms_val
            now_ms_val = t
            if reset_seq:
                dev.highest_downlink = 0
            if reset_nonces:
                dev.nonces = {}
            refused[:] = []
            n0 = len(events(dev))
            dev.on_down(msgs[name])
            add = events(dev)[n0:]
            return refused[0] if refused else (add[0][2]["type"] if add else None), add
        now_ms_val = 0
        now_ms = lambda: now_ms_val
        dev.lock_settings = LockSettings()
        t0 = 1700000003100
        got, add = run("unlock-forged", t0, reset_nonces=True)
        check(got == "bad_signature" and add[0][2]["detail"] == {"reason": "bad_signature"},
              f"unlock-forged: bad_signature without grant/nonce ({add})")
        got, _ = run("unlock", t0)
        check(got == "token_accepted", f"unlock at {t0}: {got}")
        got, add = run("unlock", t0, reset_seq=False)
        check(got == "nonce_reused" and add[0][2]["detail"] == {"reason": "nonce_reused"},
              f"duplicate delivery refused at check 5 without nonce ({add})")
        got, add = run("unlock", t0)
        check(got == "nonce_reused" and add[0][2]["detail"].get("nonce") ==
              "101112131415161718191a1b1c1d1e1f", f"after a restart: check 10 with nonce ({add})")
        got, _ = run("unlock", 1700000003000 + 31000, reset_nonces=True)
        check(got == "expired", f"31 s later: check 4 expired ({got})")
        got, _ = run("unlock", 1700000003000 - 6000)
        check(got == "not_yet_valid", f"6 s early: check 7 not_yet_valid ({got})")
        got, _ = run("unlock", 1700000003000 - 31000)
        check(got == "not_yet_valid", f"31 s early: check 3 not_yet_valid ({got})")
        got, _ = run("unlock", 1700000003300)
        check(got == "camera_statement_stale", f"statement 3100 ms old: stale ({got})")
        # camera settings of the lock: a longer max age accepts it
        dev.lock_settings = LockSettings(max_age_ms=4000)
        got, _ = run("unlock", 1700000003300)
        check(got == "token_accepted", f"max age 4000: accepted ({got})")
        dev.lock_settings = LockSettings()
        # check 11: the nonce store cannot be written
        orig_save = dev.store.save

        def failing_save(name, obj):
            if name == "nonces.json":
                raise OSError("disk full")
            return orig_save(name, obj)
        dev.store.save = failing_save
        got, _ = run("unlock", t0, reset_nonces=True)
        check(got == "storage_error" and not dev.nonces, f"check 11 storage_error ({got})")
        dev.store.save = orig_save
        # an empty `cameras` list: statements refused as camera_not_bound, waivers pass
        dev.set_camera_set("front-door", [])
        check(events(dev)[-1][2]["detail"] == {"door_id": "front-door", "cameras": []},
              "emptied camera set recorded")
        got, _ = run("unlock", t0, reset_nonces=True)
        check(got == "camera_not_bound", f"no camera key: camera_not_bound ({got})")
        now_ms_val = 1700000003050
        dev.highest_downlink = 0
        dev.on_down(msgs["unlock-waived"])
        check(events(dev)[-1][2]["type"] == "token_accepted", "no camera key: waiver accepted")
    finally:
        now_ms = real
        shutil.rmtree(tmp, ignore_errors=True)

    # the camera's heartbeat is usable as a statement (§9.9): <= 2048 bytes, announces a frame
    cam_dev = Device.__new__(Device)
    cam_dev.kind = "camera"
    jpeg, w, h, thumb = SyntheticSensor().capture(1700000000000)
    cam_dev.newest_frame = {"seq": 7, "time_ms": 1700000000000, "jpeg": jpeg, "w": w, "h": h,
                            "sha256": hashlib.sha256(jpeg).hexdigest(), "thumb": thumb.hex()}
    cam_dev.outbox_stats = lambda: {"records": 10 ** 6, "bytes": 10 ** 12}
    hbmsg = encode(keys["camera"], KINDS["heartbeat"], keys["camera"].device_id, 1,
                   1700000000100, jdump(cam_dev.heartbeat_body()))
    stmt = {"grant": "g", "nonce": "0" * 32, "expires_at_ms": 1,
            "camera": __import__("base64").b64encode(hbmsg).decode()}
    reason, evid = check_camera(stmt, 1700000000500, door_keys_of([keys["camera"].public.hex()]),
                                LockSettings())
    check(reason is None and evid == {"camera": keys["camera"].device_id.hex(), "frame_seq": 7,
                                      "capture_ms": 1700000000000},
          f"our camera's heartbeat passes a lock's camera check ({reason}, {len(hbmsg)} bytes)")

    # our JPEG + thumbnail
    jpeg, w, h, thumb = SyntheticSensor().capture(1700000000000)
    check(jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9", "synthetic JPEG markers")
    check(len(thumb) == 64, "thumbnail is 64 bytes")
    print(f"selftest: {nvec} vectors, {checks} checks, {len(fails)} failures")
    return 1 if fails else 0


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("selftest", help="reproduce the test vectors of protocol.md §15")
    st.add_argument("--doc", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "..", "docs", "protocol.md"))
    st.add_argument("--write-jpeg", help="also write one synthetic frame to this path")
    st.add_argument("-v", "--verbose", action="store_true", help="show the lock's log")
    r = sub.add_parser("run", help="enrol if needed, then run the device")
    r.add_argument("--data-dir", required=True)
    r.add_argument("--kind", choices=["camera", "lock"])
    r.add_argument("--hub", help="hub base URL, e.g. http://127.0.0.1:18500 (first run)")
    r.add_argument("--pairing-code", help="pairing code (first run)")
    r.add_argument("--duration", type=float, default=0, help="stop after N seconds (0: run forever)")
    r.add_argument("--capture-fps", type=float, default=4.0)
    r.add_argument("--door-sensor", action="store_true", help="lock: has a door contact")
    r.add_argument("--simulate-entry", action="store_true",
                   help="lock: after an unlock, the simulated door opens and closes")
    r.add_argument("--unlock-timeout-ms", type=int, default=10000)

    def bound(v):
        v = int(v)
        if not 500 <= v <= 10000:
            raise argparse.ArgumentTypeError("must be 500-10000")
        return v
    r.add_argument("--camera-statement-max-age-ms", type=bound, default=STATEMENT_MAX_AGE_MS,
                   help="lock: STATEMENT_MAX_AGE_MS (§10.3), 500-10000, default 3000")
    r.add_argument("--camera-statement-max-future-ms", type=bound, default=STATEMENT_MAX_FUTURE_MS,
                   help="lock: STATEMENT_MAX_FUTURE_MS (§10.3), 500-10000, default 2000")
    r.add_argument("--refuse-camera-waiver", action="store_true",
                   help="lock: ALLOW_CAMERA_WAIVER = no: refuse every token without a statement")
    r.add_argument("--no-link-events", dest="link_events", action="store_false")
    r.add_argument("--bounce-after", type=float, default=0,
                   help="drop the broker connection once after N seconds (outage test)")
    r.add_argument("--bounce-pause", type=float, default=3.0)
    r.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.cmd == "selftest":
        if a.write_jpeg:
            with open(a.write_jpeg, "wb") as f:
                f.write(SyntheticSensor().capture(now_ms())[0])
        sys.exit(selftest(a.doc, a.verbose))
    Device(a).run()


if __name__ == "__main__":
    main()
