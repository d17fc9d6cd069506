# shellcheck shell=bash
# Functions shared by the worker scripts. The launching functions embed this file between
# their variable prelude and the job's script; a script run directly (tests, a local pipeline)
# sources it from its own directory. Contract: docs/workers.md.

set -euo pipefail

# Production defaults of every external location; the prelude or the environment overrides them.
: "${AWS_REGION:=us-west-2}"
: "${AWS_DEFAULT_REGION:=$AWS_REGION}"
export AWS_REGION AWS_DEFAULT_REGION
: "${SCRATCH_BUCKET:=hhvm-scratch}"
: "${DOWNLOADS_BUCKET:=hhvm-downloads}"
: "${PACKAGING_REPO_URL:=https://github.com/hhvm/packaging}"
: "${PACKAGING_DIR:=/opt/hhvm-packaging}"
: "${WORK_DIR:=/var/lib/hhvm-worker}"
: "${SIGNING_KEY_SECRET_ID:=hhvm/package-signing-key}"
: "${SIGNING_KEY_ID:=D386EB94}"
# cloud-init writes the script's output here on EC2; a local run points it at its own log.
: "${WORKER_LOG:=/var/log/cloud-init-output.log}"
# Off only where powering the machine off would be wrong (a local run).
: "${SHUTDOWN_WHEN_DONE:=true}"
# How often a running job's log goes up, so that `hhvmctl logs --follow` shows it as it grows.
: "${LOG_UPLOAD_SECONDS:=60}"
: "${INSTALL_PACKAGES:=true}"
# GitHub's published SSH host key, so deploy-key pushes never trust on first use.
: "${GIT_KNOWN_HOSTS:=github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl}"

# shellcheck disable=SC2034 # used by the scripts that source this file
readonly VERSION_PATTERN='^([0-9]{4}\.[0-9]{2}\.[0-9]{2}|[0-9]+\.[0-9]+\.[0-9]+)$'
# shellcheck disable=SC2034
readonly RELEASE_PATTERN='^[0-9]+\.[0-9]+\.[0-9]+$'
# shellcheck disable=SC2034
readonly DISTRO_PATTERN='^(debian|ubuntu)-[0-9.]+-[a-z]+$'
# shellcheck disable=SC2034
readonly BRANCH_PATTERN='^(master|HHVM-[0-9]+\.[0-9]+)$'

log() {
  printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${JOB_KIND:-worker}" "$*" >&2
}

die() {
  log "error: $*"
  exit 1
}

# worker_begin JOB_KIND TIMEOUT_MINUTES: the first thing a script does. The exit handler comes
# first: whatever fails from here on still powers off.
worker_begin() {
  JOB_KIND=$1
  JOB_TIMEOUT_MINUTES=$2
  JOB_STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  JOB_STARTED_EPOCH=$(date -u +%s)
  JOB_DEADLINE=$(date -u -d "@$((JOB_STARTED_EPOCH + $2 * 60))" '+%F %T UTC')
  trap on_exit EXIT
  trap 'on_signal HUP' HUP
  trap 'on_signal INT' INT
  trap 'on_signal TERM' TERM
  HARD_TIMEOUT=
  [[ $SHUTDOWN_WHEN_DONE != true ]] || arm_hard_timeout
}

# arm_hard_timeout: either timer is enough; the systemd one survives a reboot.
arm_hard_timeout() {
  local unit=${SYSTEMD_UNIT_DIR:-/etc/systemd/system}/hhvm-worker-deadline
  shutdown -h "+$JOB_TIMEOUT_MINUTES" && HARD_TIMEOUT=" shutdown"
  if printf '[Timer]\nOnCalendar=%s\nPersistent=true\n[Install]\nWantedBy=timers.target\n' "$JOB_DEADLINE" >"$unit.timer" &&
    printf '[Service]\nExecStart=/bin/systemctl poweroff --force\n' >"$unit.service" &&
    systemctl daemon-reload && systemctl enable --now "${unit##*/}.timer"; then
    HARD_TIMEOUT+=" systemd"
  else
    rm -f -- "$unit".*
  fi
  log "hard timeout at $JOB_DEADLINE by:${HARD_TIMEOUT:- nothing}"
}

# on_signal NAME: a kill, such as the power-off at the hard timeout, is a failure.
on_signal() {
  log "killed by SIG$1 (hard timeout: $JOB_TIMEOUT_MINUTES min, at $JOB_DEADLINE)"
  exit $((128 + $(kill -l "$1")))
}

# require_variables NAME...: fails naming every missing variable, before the job has any effect.
require_variables() {
  local missing=() name
  for name in "$@"; do
    if [[ -z ${!name:-} ]]; then
      missing+=("$name")
    fi
  done
  if ((${#missing[@]} > 0)); then
    die "required variable(s) not set: ${missing[*]} (see docs/workers.md)"
  fi
}

# require_tools TOOL...: fails naming every tool the image lacks.
require_tools() {
  local missing=() tool
  for tool in "$@"; do
    command -v -- "$tool" >/dev/null || missing+=("$tool")
  done
  if ((${#missing[@]} > 0)); then
    die "the worker image lacks: ${missing[*]} (see docs/workers.md)"
  fi
}

# require_pattern NAME REGEX DESCRIPTION: the launching function validated the value already;
# checked again because a script may also be run by hand.
require_pattern() {
  if [[ ! ${!1} =~ $2 ]]; then
    die "$1=${!1@Q} is not $3"
  fi
}

current_instance_id() {
  if [[ -n ${INSTANCE_ID:-} ]]; then
    printf '%s\n' "$INSTANCE_ID"
    return
  fi
  local token
  if token=$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token) &&
    curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/instance-id; then
    return
  fi
  printf 'unknown-%s\n' "$(hostname -s)"
}

# The S3 layout of the scratch bucket (lambdas/pipeline-core/src/layout.rs is the contract).
marker_key() { # VERSION JOB [DISTRO]
  if [[ -n ${3:-} ]]; then
    printf 'markers/%s/%s/%s.json\n' "$1" "$2" "$3"
  else
    printf 'markers/%s/%s.json\n' "$1" "$2"
  fi
}

log_key() { # VERSION JOB INSTANCE [DISTRO]
  if [[ -n ${4:-} ]]; then
    printf 'logs/%s/%s/%s/%s.log\n' "$1" "$2" "$4" "$3"
  else
    printf 'logs/%s/%s/%s.log\n' "$1" "$2" "$3"
  fi
}

# worker_ready: once the variables are known good: where the log goes (per distro when
# JOB_DISTRO is set), and a private directory for secrets that the exit handler removes. A job
# without a hard timeout stops here, once its log can go up.
worker_ready() {
  WORKER_INSTANCE_ID=$(current_instance_id)
  LOG_KEY=$(log_key "$VERSION" "$JOB_KIND" "$WORKER_INSTANCE_ID" "${JOB_DISTRO:-}")
  SECRETS_DIR=$(umask 077 && mktemp -d)
  mkdir -p -- "$WORK_DIR"
  log "instance $WORKER_INSTANCE_ID; log goes to s3://$SCRATCH_BUCKET/$LOG_KEY"
  [[ $SHUTDOWN_WHEN_DONE != true || -n $HARD_TIMEOUT ]] || die "no hard timeout could be armed"
  [[ $LOG_UPLOAD_SECONDS =~ ^[1-9][0-9]*$ ]] || die "LOG_UPLOAD_SECONDS is ${LOG_UPLOAD_SECONDS@Q}, not whole seconds"
  upload_log_every "$LOG_UPLOAD_SECONDS" &
  LOG_UPLOADER_PID=$!
}

# upload_log [complete]: the log so far to LOG_KEY; the last upload says it is complete (object
# metadata complete=true), which is how a follower knows the job has ended.
upload_log() {
  aws s3 cp --only-show-errors "$WORKER_LOG" "s3://$SCRATCH_BUCKET/$LOG_KEY" ${1:+--metadata complete=true}
}

# upload_log_every SECONDS, in the background until on_exit stops it. TERM waits for an upload
# in flight (bash runs the trap once its foreground command ends), so a partial upload never
# lands after the complete one; a sleep is ended with it, so nothing holds the job's output open.
# A log that has not grown since its last upload is not sent again: a job that waits (for the
# repositories' lease, say) costs no requests.
upload_log_every() {
  local sleeper='' uploaded_size='' size
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  while true; do
    sleep "$1" &
    sleeper=$!
    wait "$sleeper"
    size=$(stat -c %s -- "$WORKER_LOG" 2>/dev/null) || continue
    if [[ $size != "$uploaded_size" ]]; then
      if upload_log; then
        uploaded_size=$size
      fi
    fi
  done
}

on_exit() {
  local status=$?
  set +e
  if [[ -n ${SECRETS_DIR:-} ]]; then
    rm -rf -- "$SECRETS_DIR"
  fi
  # A job's own cleanup (update-repos.sh releases its lease), on every exit path.
  if declare -F job_cleanup >/dev/null; then
    job_cleanup
  fi
  if ((status == 0)); then
    log "finished"
  else
    log "failed with status $status"
  fi
  if [[ -n ${LOG_UPLOADER_PID:-} ]]; then
    kill -TERM "$LOG_UPLOADER_PID" 2>/dev/null
    wait "$LOG_UPLOADER_PID" 2>/dev/null
  fi
  if [[ -n ${LOG_KEY:-} && -f $WORKER_LOG ]]; then
    upload_log complete || log "could not upload the log"
  fi
  if [[ $SHUTDOWN_WHEN_DONE == true ]]; then
    shutdown -h now
  fi
  exit "$status"
}

install_packages() {
  if [[ $INSTALL_PACKAGES == true ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
  fi
}

clone_packaging() {
  rm -rf -- "$PACKAGING_DIR"
  git clone --quiet --depth 1 --branch "$PACKAGING_BRANCH" -- "$PACKAGING_REPO_URL" "$PACKAGING_DIR"
}

# fetch_secret SECRET_ID FILE: the secret's value, readable by this user only.
fetch_secret() {
  (umask 077 && aws secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text >"$2")
  [[ -s $2 ]] || die "secret $1 is empty"
}

import_signing_key() {
  fetch_secret "$SIGNING_KEY_SECRET_ID" "$SECRETS_DIR/signing-key.asc"
  gpg --batch --quiet --import "$SECRETS_DIR/signing-key.asc"
  rm -f -- "$SECRETS_DIR/signing-key.asc"
}

# deploy_key_ssh_command SECRET_ID NAME: fetches a deploy key and prints a GIT_SSH_COMMAND using
# only that key and GitHub's pinned host key.
deploy_key_ssh_command() {
  fetch_secret "$1" "$SECRETS_DIR/$2"
  printf '%s\n' "$GIT_KNOWN_HOSTS" >"$SECRETS_DIR/known_hosts"
  printf 'ssh -i %q -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%q\n' \
    "$SECRETS_DIR/$2" "$SECRETS_DIR/known_hosts"
}

# write_checksums DIR FILE...: a SHA256SUMS-format list of FILEs (names relative to DIR).
write_checksums() {
  local dir=$1
  shift
  (cd -- "$dir" && sha256sum -- "$@")
}

# write_manifest OUT DIR [FIELD=VALUE...]: the success manifest: who wrote it (the instance,
# and the execution that started it when there was one), the fields given, the job's timings,
# and every file of DIR with its size and SHA-256.
write_manifest() {
  local out=$1 dir=$2
  shift 2
  python3 - "$dir" "job=$JOB_KIND" "version=$VERSION" "instance=$WORKER_INSTANCE_ID" \
    "executionName=${EXECUTION_NAME:-}" "startedAt=$JOB_STARTED_AT" "startedEpoch=$JOB_STARTED_EPOCH" "$@" >"$out" <<'PY'
import hashlib, json, os, sys, time
directory, pairs = sys.argv[1], sys.argv[2:]
manifest = dict(pair.split("=", 1) for pair in pairs)
started = int(manifest.pop("startedEpoch"))
manifest["finishedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
manifest["durationSeconds"] = int(time.time()) - started
files = []
for name in sorted(os.listdir(directory)) if directory else []:
    path = os.path.join(directory, name)
    if os.path.isfile(path):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        files.append({"name": name, "bytes": os.path.getsize(path), "sha256": digest.hexdigest()})
manifest["files"] = files
json.dump(manifest, sys.stdout, indent=2, sort_keys=True)
sys.stdout.write("\n")
PY
}

# upload_marker FILE [DISTRO]: the success marker; written last, only when the job succeeded.
upload_marker() {
  aws s3 cp --only-show-errors --content-type application/json "$1" \
    "s3://$SCRATCH_BUCKET/$(marker_key "$VERSION" "$JOB_KIND" "${2:-}")"
}
