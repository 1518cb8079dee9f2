#!/bin/sh
# Build the image and run compose.yaml by hand: PostgreSQL and two Kennel processes. Checks that
# both become healthy (/readyz), that a key made with `kennel keys create` in one container
# works on both, that a task submitted to each process completes and is seen by the other,
# that each SMTP port greets, and which executors ran the turns. Removes everything at the end.
#
#   deploy/check_container.sh
#   BASE_IMAGE=... POSTGRES_IMAGE=... deploy/check_container.sh   # stand-ins: deploy/offline/
set -eu
cd "$(dirname "$0")/.."
PROJECT=kennel-check

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -p "$PROJECT" "$@"
    else
        docker-compose -p "$PROJECT" "$@"
    fi
}

docker build -q --build-arg BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}" -t kennel:local . >/dev/null
echo "built kennel:local"
trap 'compose down -v >/dev/null 2>&1 || true' EXIT
compose up -d --no-build >/dev/null 2>&1 || { compose logs --tail 40; exit 1; }

for service in kennel-a kennel-b; do
    container=$(compose ps -q "$service")
    waited=0
    until [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ]; do
        waited=$((waited + 2))
        if [ "$waited" -gt 240 ]; then
            echo "$service not healthy after 240 s"; compose logs --tail 40 "$service"; exit 1
        fi
        sleep 2
    done
    echo "$service healthy after ${waited} s (HEALTHCHECK on /readyz)"
done

KEY=$(compose exec -T kennel-a kennel keys create --email check@example.com | tail -n 1)
echo "made a key in kennel-a's container: ${KEY%"${KEY#????????}"}..."

python3 - "$KEY" <<'PY'
import json, socket, sys, urllib.request

key = sys.argv[1]

def call(port, method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=90) as answer:
        return json.load(answer)

for port, other in ((8001, 8002), (8002, 8001)):
    worker = call(port, "POST", "/api/workers", {"title": f"check {port}", "instructions": "Answer."})
    done = call(port, "POST", "/api/tasks", {"input": f"hello from {port}", "workerId": worker["id"]})
    assert not done.get("running"), done
    task_id = done["metadata"]["taskId"]
    seen = call(other, "GET", f"/api/tasks/{task_id}")
    print(f"task {task_id} submitted to :{port} completed ({done['output_text'][:40]!r}); "
          f":{other} sees it")

for port in (2525, 2526):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as smtp:
        greeting = smtp.recv(200).decode().strip()
    assert greeting.startswith("220 "), greeting
    print(f"SMTP :{port} greets: {greeting}")
PY

echo "turns (DBOS workflows) by executor, and the heartbeats:"
compose exec -T postgres psql -U kennel -d kennel -At -c \
    "SELECT executor_id, count(*) FROM dbos.workflow_status GROUP BY 1 ORDER BY 1" \
    -c "SELECT executor_id, host FROM executors ORDER BY 1"
echo "container check passed"
