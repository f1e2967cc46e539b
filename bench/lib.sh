# bench/lib.sh - helpers shared by the HTTP benchmarks (bench/http.sh, bench/infer.sh); source it.
# Measures from /proc so the figures do not depend on the load generator:
#   free_port                 a free TCP port on 127.0.0.1
#   wait_up URL [PATH]        wait (20 s at most) until URL+PATH (default /api/health) answers 2xx
#   tree_pids PID             PID and all its descendants
#   tree_cpu PID              CPU seconds (user + sys) of PID and its descendants
#   tree_rss PID              RSS in kB of PID and its descendants
#   wrk_stats C0 C1           reads wrk --latency output on stdin; prints
#                             "req/s p50_ms p99_ms cpu_us_per_request errors" (C0/C1: tree_cpu
#                             before and after; errors = non-2xx/3xx responses + socket errors)
#   bench_setup               sets ncpu, srv_cpu (0) and wrk_cpu (1, or 0 on one CPU) for taskset,
#                             work (a new temp dir) and pids (append the servers you start);
#                             an EXIT trap kills pids and removes work
#   modeld_bin                sets bin to $MODELD_BIN, else $top/build/release/modeld, building
#                             that (Release, no tests) when missing
py=${py:-/usr/bin/python3}

bench_cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# ncpu, srv_cpu and wrk_cpu are for the sourcing script (its taskset calls and report).
# shellcheck disable=SC2034
bench_setup() {
  ncpu=$(nproc)
  srv_cpu=0
  wrk_cpu=$((ncpu > 1 ? 1 : 0))
  work=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
}

modeld_bin() {
  bin=${MODELD_BIN:-$top/build/release/modeld}
  if [ ! -x "$bin" ]; then
    cmake -S "$top" -B "$top/build/release" -DCMAKE_BUILD_TYPE=Release -DMODELD_TESTS=OFF >/dev/null
    cmake --build "$top/build/release" -j"$(nproc)" --target modeld >/dev/null
  fi
}

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() {
  $py - "$1${2:-/api/health}" <<'PY'
import sys, time, urllib.request
for _ in range(400):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).read()
        sys.exit(0)
    except Exception:
        time.sleep(0.05)
sys.exit(1)
PY
}

tree_pids() { echo "$1"; for c in $(pgrep -P "$1" || true); do tree_pids "$c"; done; }

tree_cpu() {
  local t=0 tck
  tck=$(getconf CLK_TCK)
  for p in $(tree_pids "$1"); do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  $py -c "print($t / $tck)"
}

tree_rss() {
  local t=0
  for p in $(tree_pids "$1"); do
    [ -r "/proc/$p/status" ] && t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
  done
  echo "$t"
}

wrk_stats() {
  $py -c '
import re, sys
out = sys.stdin.read()
c0, c1 = float(sys.argv[1]), float(sys.argv[2])
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errs = int(m.group(1)) if m else 0
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
errs += sum(int(x) for x in m.groups()) if m else 0
print(rps, p50, p99, (c1 - c0) * 1e6 / max(reqs, 1), errs)
' "$1" "$2"
}
