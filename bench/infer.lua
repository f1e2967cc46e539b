-- infer.lua - wrk script for bench/infer.sh: POST the OIP JSON request in the file named by
-- $BENCH_BODY with the API key in $BENCH_KEY (the same bytes to both servers).
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
