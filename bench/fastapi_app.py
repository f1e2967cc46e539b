"""The FastAPI reference for bench/http.sh: the same two routes as modeld, written the way a
FastAPI user would: GET /api/health, and POST /api/auth/token, which checks an API key (SHA-256
of the key compared in constant time with the stored hash), reads a small JSON body and
returns an HS256 JWT. Run under uvicorn with 2 workers, uvloop and httptools."""
import base64
import hashlib
import hmac
import json
import os
import time

from fastapi import FastAPI, Header, HTTPException, Request

app = FastAPI()
START = time.monotonic()
KEY = os.environ.get("BENCH_API_KEY", "mdk_000000000000_benchkey")
KEY_HASH = hashlib.sha256(KEY.encode()).digest()
SECRET = os.environ.get("BENCH_JWT_SECRET", "bench-secret-0123456789abcdef0123456789").encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@app.get("/api/health")
async def health():
    return {"success": True, "status": "ok", "version": "bench", "uptime_s": int(time.monotonic() - START)}


@app.post("/api/auth/token")
async def token(request: Request, x_api_key: str = Header(None)):
    if not x_api_key or not hmac.compare_digest(hashlib.sha256(x_api_key.encode()).digest(), KEY_HASH):
        raise HTTPException(status_code=401, detail="invalid API key")
    body = await request.body()
    if body and not isinstance(json.loads(body), dict):
        raise HTTPException(status_code=400, detail="expected a JSON object")
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = b64(json.dumps({"sub": "000000000000", "role": "admin", "iat": now, "exp": now + 900},
                            separators=(",", ":")).encode())
    sig = b64(hmac.new(SECRET, (head + "." + claims).encode(), hashlib.sha256).digest())
    return {"success": True, "access_token": head + "." + claims + "." + sig, "token_type": "Bearer",
            "expires_in": 900, "role": "admin"}
