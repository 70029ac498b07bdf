#!/bin/sh
# The demonstration: an untrusted Python step runs in a cell, does its job,
# and every escape it tries is refused.  Usage: examples/demo.sh PATH/TO/cellblock
set -eu
CELLBLOCK=${1:-cellblock}
HERE=$(cd "$(dirname "$0")" && pwd)
DEMO=$(mktemp -d /tmp/cellblock-demo.XXXXXX)
trap 'rm -rf "$DEMO"' EXIT

mkdir "$DEMO/in" "$DEMO/out" "$DEMO/secret"
seq 1 100 > "$DEMO/in/numbers.txt"
echo "api-token-0123456789" > "$DEMO/secret/token"
chmod 755 "$DEMO" "$DEMO/in"
chmod 777 "$DEMO/out"
chmod 600 "$DEMO/secret/token"

echo "\$ cellblock run --ro-bind $DEMO/in:/in --bind $DEMO/out:/out --memory 128M --timeout 10 -- python3 untrusted.py"
echo
set +e
"$CELLBLOCK" run \
        --ro-bind "$HERE/untrusted.py:/step/untrusted.py" \
        --ro-bind "$DEMO/in:/in" \
        --bind "$DEMO/out:/out" \
        --memory 128M --pids 32 --timeout 10 \
        --result "$DEMO/result.json" \
        -- python3 /step/untrusted.py "$DEMO/secret/token" < "$DEMO/in/numbers.txt"
status=$?
set -e
echo
echo "exit status: $status; output the step left in /out: $(cat "$DEMO/out/sum.txt")"
echo "result:"
python3 -m json.tool "$DEMO/result.json"
