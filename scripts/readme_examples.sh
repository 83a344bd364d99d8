#!/usr/bin/env bash
# Run the README's "Worked examples" end to end against a real server, and check what they answer.
#
#   scripts/readme_examples.sh                         # with the checkout's .venv (make install)
#   PYTHON=/path/to/venv/bin/python scripts/readme_examples.sh
#
# The ```sh blocks of that section run as written, in order, in one shell, in a temporary
# directory, against a server of this script's own (a free port, a temporary data dir, this
# checkout's code). Only these are rewritten: 127.0.0.1:8000 and port 9000 become free ports,
# .venv/bin/python and .venv/bin/darkroom use $PYTHON, and a `make run` line restarts the
# script's server with the settings written before it. After each block a check asserts the key
# facts (statuses, image sizes, signatures). KEEP=1 keeps the temporary directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
README=$ROOT/README.md
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
if [[ ! -x $PYTHON ]]; then
    echo "no Python at $PYTHON: run 'make install' first, or set PYTHON" >&2
    exit 2
fi
PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")
# This checkout's code, whichever environment runs it.
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
for tool in curl jq unzip python3; do
    command -v "$tool" >/dev/null || { echo "the examples need $tool" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/darkroom-readme.XXXXXX")
mkdir -p "$WORK/blocks" "$WORK/out" "$WORK/run"
export DARKROOM_DATA_DIR=$WORK/var
# A .env in the directory a command starts in would be read: start them where there is none.
cd "$WORK/run"

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
HOOK_PORT=$(free_port)
API_URL=http://127.0.0.1:$PORT

darkroom() { "$PYTHON" -c 'import sys; from app.cli import main; main(sys.argv[1:])' "$@"; }

SERVER_PID=
start_server() {  # start_server [NAME=value ...]: serve on $PORT, wait until it answers
    env "$@" DARKROOM_PORT="$PORT" "$PYTHON" -c 'from app.cli import main; main(["serve"])' \
        >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 120); do
        if curl -sf "$API_URL/healthz" >/dev/null; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited" >&2; return 1; }
        sleep 0.5
    done
    echo "the server did not answer within 60 s" >&2
    return 1
}
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
restart_server() { stop_server; start_server "$@"; }

RECEIVER=
cleanup() {
    local status=$?
    if [[ -n $RECEIVER ]] && kill -0 "$RECEIVER" 2>/dev/null; then kill "$RECEIVER"; fi
    stop_server
    if [[ $status -ne 0 ]]; then
        echo "FAILED (exit $status); the server's log ends:" >&2
        tail -n 30 "$WORK/server.log" >&2 || true
        echo "kept $WORK" >&2
    elif [[ -n ${KEEP:-} ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

fail() { echo "CHECK FAILED: $*" >&2; exit 1; }
check() { echo "  ok: $1"; }
# The Nth block's output.
out() { cat "$WORK/out/$1.txt"; }
# "WxH" of an image file.
size_of() { "$PYTHON" -c 'import sys; from PIL import Image; print("%dx%d" % Image.open(sys.argv[1]).size)' "$1"; }

# The ```sh blocks of "## Worked examples", one file each.
awk -v dir="$WORK/blocks" '
    /^## / { inside = ($0 == "## Worked examples") }
    inside && /^```sh$/ { n++; file = sprintf("%s/%02d.sh", dir, n); block = 1; next }
    block && /^```$/ { block = 0; close(file); next }
    block { print > file }
' "$README"
BLOCKS=("$WORK"/blocks/*.sh)

rewrite() {
    sed -E \
        -e "s#127\.0\.0\.1:8000#127.0.0.1:$PORT#g" \
        -e "s#\b9000\b#$HOOK_PORT#g" \
        -e 's#\.venv/bin/python#"$PYTHON"#g' \
        -e 's#\.venv/bin/darkroom#darkroom#g' \
        -e 's#^(([A-Z_]+=[^ ]+ )*)make run$#restart_server \1#' \
        "$1"
}

# One check per block, in order.
check_01() {  # setup
    [[ $KEY == dk_* ]] || fail "no API key: $KEY"
    [[ $(size_of mug.png) == 1360x765 ]] || fail "mug.png is $(size_of mug.png)"
    check "key minted; mug.png is 1360x765"
}
check_02() {  # edit with a mask and a reference, and its lineage
    [[ $(jq -r .status edit.json) == succeeded ]] || fail "edit: $(jq -c '{status, error}' edit.json)"
    [[ $(jq -r '.outputs[0] | "\(.width)x\(.height)"' edit.json) == 1360x765 ]] || fail "edit size"
    curl -sf -o edited.png "$API_URL/v1/assets/$EDITED/content" -H "$H"
    "$PYTHON" - <<'PY' || fail "the edit changed pixels outside the mask, or none inside"
from PIL import Image, ImageChops
import numpy as np
source, edited = Image.open("mug.png").convert("RGB"), Image.open("edited.png").convert("RGB")
assert edited.size == source.size, edited.size
changed = np.asarray(ImageChops.difference(source, edited).convert("L")) > 0
keep = np.asarray(Image.open("mask.png"))[:, :, 3] > 0
assert not changed[keep].any(), "outside the mask"
assert changed[~keep].any(), "nothing inside the mask"
PY
    grep -q '"parents":\["source","mask","reference"\]' "$WORK/out/02.txt" || fail "lineage"
    [[ $(grep -c '^{"id":"ast_' "$WORK/out/02.txt") -eq 4 ]] || fail "lineage has not 4 assets"
    check "edit 200 succeeded, 1360x765, only masked pixels changed; lineage source, mask, reference"
}
check_03() {  # variants on local/draft
    out 03 | jq -e '.status == "succeeded" and (.groups | length) == 1
        and .groups[0].model == "local/draft" and .groups[0].seeds == [11, 12]' >/dev/null \
        || fail "variants: $(out 03)"
    check "variants succeeded: one local/draft group, seeds 11 and 12"
}
check_04() {  # a model that is not configured
    out 04 | grep -q '^422 application/problem+json$' || fail "not a 422 problem: $(out 04)"
    out 04 | head -1 | jq -e '.status == 422 and (.type | endswith("/model-unavailable"))
        and (.detail | contains("DARKROOM_OPENAI_API_KEY"))' >/dev/null || fail "problem body"
    check "openai/gpt-image-2 unconfigured: 422 model-unavailable naming DARKROOM_OPENAI_API_KEY"
}
check_05() {  # export with presets and a bundle
    out 05 | head -1 | grep -q '"instagram-square 1080x1080"' || fail "presets"
    [[ $(jq -r .status export.json) == succeeded ]] || fail "export: $(jq -c .error export.json)"
    [[ $(jq -r '[.outputs[] | "\(.format) \(.width)x\(.height)"] | join(",")' export.json) == \
        "webp 1080x1080,webp 1200x630,webp 800x600,zip 0x0" ]] || fail "export outputs"
    [[ $(unzip -Z1 export.zip | tr '\n' ' ') == \
        "instagram-square.webp og-image.webp 800x600.webp " ]] || fail "zip: $(unzip -Z1 export.zip)"
    mkdir -p unzipped && unzip -oq export.zip -d unzipped
    for entry in instagram-square:1080x1080 og-image:1200x630 800x600:800x600; do
        file=unzipped/${entry%%:*}.webp
        [[ $(size_of "$file") == "${entry#*:}" ]] || fail "$file is $(size_of "$file")"
        [[ $(wc -c <"$file") -le 150000 ]] || fail "$file is over max_bytes"
    done
    check "export succeeded: 1080x1080, 1200x630, 800x600 webp under 150000 bytes, zipped"
}
check_06() {  # the optimizer
    out 06 | jq -s -e '.[0].given == ["subject", "setting", "lighting"]
        and (.[0].filled | index("composition")) != null and .[0].rendering == "sentences"
        and .[1].rendering == "tags" and (.[1].negative_prompt | length) > 0' >/dev/null \
        || fail "optimize: $(out 06)"
    check "optimize: given subject, setting, lighting; sentences for openai, tags for stability"
}
check_07() {  # a loopback webhook refused
    out 07 | grep -q '^422 application/problem+json$' || fail "not a 422 problem: $(out 07)"
    out 07 | head -1 | jq -e '.status == 422 and (.type | endswith("/url-refused"))
        and (.detail | contains("DARKROOM_URL_ALLOW"))' >/dev/null || fail "refusal: $(out 07)"
    check "loopback webhook URL: 422 url-refused naming DARKROOM_URL_ALLOW"
}
check_08() {  # the restart
    grep -q "DARKROOM_URL_ALLOW=127.0.0.1:$HOOK_PORT" "$WORK/blocks/08.sh.run" || fail "restart"
    curl -sf "$API_URL/healthz" >/dev/null || fail "the server is not answering"
    check "restarted with DARKROOM_URL_ALLOW=127.0.0.1:$HOOK_PORT"
}
check_09() {  # a signed delivery to the local receiver
    jq -e '.secret | startswith("whsec_")' endpoint.json >/dev/null || fail "endpoint: $(cat endpoint.json)"
    grep -q '"status":"succeeded"' "$WORK/out/09.txt" || fail "the job"
    grep -q '^webhook-id: msg_' "$WORK/out/09.txt" || fail "no delivery arrived"
    grep -q '^webhook-timestamp: [0-9]\+$' "$WORK/out/09.txt" || fail "timestamp header"
    grep -q '^webhook-signature: v1,' "$WORK/out/09.txt" || fail "signature header"
    grep -qx 'signature ok' "$WORK/out/09.txt" || fail "the receiver's HMAC check"
    grep -q '"status":"delivered","attempts":\[{[^]]*"status_code":204' "$WORK/out/09.txt" \
        || fail "deliveries: $(cat "$WORK/out/09.txt")"
    # The same delivery through the standardwebhooks package, when installed (the dev extra).
    SECRET=$(jq -r .secret endpoint.json) "$PYTHON" - "$WORK/out/09.txt" <<'PY' || fail "standardwebhooks"
import os, sys
try:
    from standardwebhooks import Webhook
except ImportError:
    print("  (standardwebhooks not installed; skipped)")
    sys.exit(0)
lines = open(sys.argv[1]).read().splitlines()
headers = dict(line.split(": ", 1) for line in lines if line.startswith("webhook-"))
body = next(line for line in lines if line.startswith('{"type":'))
payload = Webhook(os.environ["SECRET"]).verify(body, headers)
assert payload["type"] == "job.succeeded", payload["type"]
print("  ok: standardwebhooks verifies the delivery")
PY
    check "delivery arrived with webhook-id, -timestamp, -signature; HMAC ok; recorded 204"
}
check_10() {  # server-sent events
    "$PYTHON" - "$WORK/out/10.txt" "$JOB" <<'PY' || fail "events: $(out 10)"
import json, sys
text, job = open(sys.argv[1]).read(), sys.argv[2]
events = []
for chunk in text.strip().split("\n\n"):
    fields = dict(line.split(": ", 1) for line in chunk.splitlines() if not line.startswith(":"))
    events.append((fields["event"], json.loads(fields["data"])))
for name, data in events:
    assert data["job_id"] == job and "status" in data, data
    if name == "progress":
        assert data["completed"] <= data["total"] == 3, data
name, last = events[-1]
assert name == "succeeded" and last["job"]["status"] == "succeeded", events[-1]
assert len(last["job"]["outputs"]) == 3
print("  events:", " ".join(name for name, _ in events))
PY
    check "events carry job_id and status; the last is succeeded with the whole job"
}
CHECKS=(check_01 check_02 check_03 check_04 check_05 check_06 check_07 check_08 check_09 check_10)
[[ ${#BLOCKS[@]} -eq ${#CHECKS[@]} ]] \
    || fail "README has ${#BLOCKS[@]} example blocks; this script checks ${#CHECKS[@]}"

echo "Darkroom on $API_URL, data in $DARKROOM_DATA_DIR, receiver port $HOOK_PORT"
start_server
for i in "${!BLOCKS[@]}"; do
    n=$(printf '%02d' $((i + 1)))
    rewrite "${BLOCKS[$i]}" >"$WORK/blocks/$n.sh.run"
    echo "== block $n"
    eval "$(cat "$WORK/blocks/$n.sh.run")" >"$WORK/out/$n.txt"
    cut -c1-200 "$WORK/out/$n.txt"
    "${CHECKS[$i]}"
done
stop_server
echo "All ${#BLOCKS[@]} example blocks ran and checked."
