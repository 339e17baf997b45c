#!/usr/bin/env bash
# gatednet benchmarks: one command for every workload (see benchmarks/README.md).
#   benchmarks/run.sh            full run (~15-25 min on 2 cores): installs the peers into
#                                benchmarks/.venv-torch and benchmarks/.venv-nt, writes
#                                benchmarks/out/results.{md,csv,json}
#   benchmarks/run.sh --smoke    tiny sizes, one run, gatednet (+ numpy if importable), no venvs,
#                                < 30 s: part of the tests so the harness never rots
#   benchmarks/run.sh --install-only   only create/update the peer venvs
# Other flags go to bench.py (--only ID,..., --runs N, --out DIR, --threads N).
# The library: $GATEDNET_LIB, else .build/release/libgatednet.so (built here when missing).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-python3}"
SMOKE=0 INSTALL_ONLY=0
for a in "$@"; do
  [ "$a" = "--smoke" ] && SMOKE=1
  [ "$a" = "--install-only" ] && INSTALL_ONLY=1
done
OUT="$HERE/out"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = "--out" ] && OUT="${args[$((i + 1))]}"
done
mkdir -p "$OUT"

if [ -z "${GATEDNET_LIB:-}" ] && [ "$INSTALL_ONLY" = 0 ]; then
  GATEDNET_LIB="$ROOT/.build/release/libgatednet.so"
  if [ ! -f "$GATEDNET_LIB" ]; then
    echo "building libgatednet.so (swift build -c release)" >&2
    (cd "$ROOT" && swift build -c release -Xswiftc -static-stdlib >&2)
  fi
fi
export GATEDNET_LIB

# Peer venvs (full mode only). Two interpreters because neural-tangents 0.6.5 needs
# jax/jaxlib 0.4.23 with numpy 1.x, which cannot share a venv with torch 2.13 / numpy 2.
# A failed install is recorded in $OUT/install-*.status and reported in the table.
install_venv() { # name, then alternatives; one alternative is pip argument lists joined by ' && '
  local name="$1" venv="$HERE/.venv-$1" status="$OUT/install-$1.status"
  shift
  local want="$*"
  # reuse only a venv made from the same requirement lines (a changed pin reinstalls)
  if [ -x "$venv/bin/python" ] && [ -f "$venv/.bench-ok" ] && [ "$(cat "$venv/.bench-ok")" = "$want" ]; then
    echo "ok (existing venv): $want" > "$status"
    return 0
  fi
  rm -rf "$venv"
  "$PY" -m venv "$venv" || { echo "python -m venv failed" > "$status"; return 0; }
  "$venv/bin/pip" install -q --upgrade pip > /dev/null 2>&1 || true
  local alt log="$OUT/install-$name.log" ok part
  : > "$log"
  for alt in "$@"; do
    ok=1
    while IFS= read -r part; do
      [ -n "$part" ] || continue
      echo "+ pip install $part" >> "$log"
      # shellcheck disable=SC2086
      "$venv/bin/pip" install $part >> "$log" 2>&1 || { ok=0; break; }
    done < <(echo "$alt" | sed 's/ && /\n/g')
    if [ "$ok" = 1 ]; then
      echo "$want" > "$venv/.bench-ok"
      echo "ok: $alt" > "$status"
      return 0
    fi
  done
  echo "pip install failed for every alternative ($*); see $log" > "$status"
}

if [ "$SMOKE" = 0 ]; then
  echo "installing peers (venvs are reused when present)" >&2
  # torch CPU-only build first (plain `torch` pulls gigabytes of CUDA packages).
  install_venv torch \
    "torch==2.13.0+cpu numpy" \
    "torch==2.13.0+cpu numpy --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple" \
    "torch numpy --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple"
  # neural-tangents 0.6.5: its structured-derivatives NTK (implementation 3) runs on jax 0.4.23
  # and fails on later jax; numpy 1.26.4 and scipy < 1.14 go with that jaxlib. --no-deps keeps
  # pip from pulling tf2jax/tensorflow (only nt's TF-import helpers need them).
  install_venv nt \
    "jax==0.4.23 jaxlib==0.4.23 numpy==1.26.4 scipy==1.13.1 frozendict==2.4.6 typing_extensions==4.12.2 && --no-deps neural-tangents==0.6.5"
fi
if [ "$INSTALL_ONLY" = 1 ]; then
  cat "$OUT"/install-*.status
  exit 0
fi

exec "$PY" "$HERE/bench.py" "$@"
