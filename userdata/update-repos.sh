#!/bin/bash
# Adds the packages built for VERSION to the apt repositories in s3://DOWNLOADS_BUCKET/{debian,ubuntu}/.
# One publisher at a time: a lease in the scratch bucket, taken before anything of the
# repositories is read and released on every exit. No state besides what is published: each
# suite's signed InRelease and the index files it lists (fetched by hash and checked against
# it) are merged with the new packages by apt_repository.py. Clients switch atomically: pool
# files, then by-hash indices, then plain indices, then Release and Release.gpg, and InRelease
# last, written only if it is still the one read (compare-and-swap). Variables and effects:
# docs/workers.md.
#
# usage: VERSION=4.168.2 PACKAGING_BRANCH=HHVM-4.168 [DISTROS='debian-12-bookworm ...'] update-repos.sh
set -euo pipefail
if ! declare -F worker_begin >/dev/null; then
  # shellcheck source-path=SCRIPTDIR source=common.sh
  source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"
fi

# Metadata only is read and written, so even a large repository takes minutes, not hours.
worker_begin update-repositories 120

require_variables VERSION PACKAGING_BRANCH SCRATCH_BUCKET DOWNLOADS_BUCKET
require_pattern VERSION "$VERSION_PATTERN" "a version (YYYY.MM.DD or x.y.z)"
require_pattern PACKAGING_BRANCH "$BRANCH_PATTERN" "master or HHVM-x.y"
: "${DISTROS:=}"
for distro in $DISTROS; do
  [[ $distro =~ $DISTRO_PATTERN ]] || die "DISTROS holds ${distro@Q}, which is not a distro name"
done
# How long a publish waits for another one to finish before it gives up (the hard timeout
# must leave time to publish), and how often it looks.
: "${REPOSITORY_LEASE_WAIT_MINUTES:=60}"
: "${REPOSITORY_LEASE_POLL_SECONDS:=30}"
# Release files change with every publish; pool and by-hash files never change under a name.
: "${RELEASE_CACHE_SECONDS:=60}"
# How long a by-hash index stays after a publish stopped listing it: clients midway through
# an update still fetch the generation their InRelease named.
: "${BY_HASH_RETENTION_DAYS:=14}"
: "${REPOSITORY_ARCHITECTURES:=amd64}"
require_pattern REPOSITORY_LEASE_WAIT_MINUTES '^[0-9]{1,3}$' "a number of minutes"
require_pattern REPOSITORY_LEASE_POLL_SECONDS '^[1-9][0-9]{0,3}$' "a number of seconds"
require_pattern RELEASE_CACHE_SECONDS '^[0-9]{1,5}$' "a number of seconds"
require_pattern BY_HASH_RETENTION_DAYS '^[0-9]{1,3}$' "a number of days"
require_pattern REPOSITORY_ARCHITECTURES '^[a-z0-9]+( [a-z0-9]+)*$' "space-separated architectures"

readonly APT_REPOSITORY=${WORKER_TOOLS:-$(dirname -- "${BASH_SOURCE[0]}")}/apt_repository.py
readonly LEASE_KEY=locks/apt-repositories.json
readonly IMMUTABLE='public, max-age=31536000, immutable'
readonly SHORT_LIVED="public, max-age=$RELEASE_CACHE_SECONDS"
readonly INCOMING=$WORK_DIR/incoming
readonly REPOS=$WORK_DIR/repos
readonly PUBLISHED_BUILDS=$WORK_DIR/published-builds.txt PUBLISHED_SUITES=$WORK_DIR/published-suites.txt
readonly SUITE_LISTING=$WORK_DIR/suite-listing.txt
INCLUDED=()
PUBLISHED_DISTS=()
LEASE_ETAG=

# fetch_built_packages: for every distro (those in DISTROS, or every one with a success
# marker for VERSION), exactly the .deb files its marker names, from the staging prefix of the
# attempt that wrote it, each checked against the SHA-256 the marker states.
fetch_built_packages() {
  rm -rf -- "$INCOMING" "$WORK_DIR/markers"
  mkdir -p -- "$INCOMING" "$WORK_DIR/markers"
  : >"$PUBLISHED_BUILDS"
  : >"$PUBLISHED_SUITES"
  local distros=() distro marker
  if [[ -n $DISTROS ]]; then
    read -ra distros <<<"$DISTROS"
  else
    mapfile -t distros < <(aws s3api list-objects-v2 --bucket "$SCRATCH_BUCKET" \
      --prefix "markers/$VERSION/binary-package/" --query 'Contents[].Key' --output text |
      tr '\t' '\n' | sed -n 's|^markers/[^/]*/binary-package/\([^/]*\)\.json$|\1|p')
  fi
  for distro in "${distros[@]}"; do
    [[ $distro =~ $DISTRO_PATTERN ]] || continue
    marker=$WORK_DIR/markers/$distro.json
    if ! aws s3 cp --only-show-errors "s3://$SCRATCH_BUCKET/$(marker_key "$VERSION" binary-package "$distro")" \
      "$marker" 2>/dev/null; then
      log "skipping $distro: its build wrote no success marker"
      continue
    fi
    fetch_staged_packages "$distro" "$marker"
    INCLUDED+=("$distro")
  done
  ((${#INCLUDED[@]} > 0)) || die "no distro of $VERSION has a successful build to publish"
}

# fetch_staged_packages DISTRO MARKER: the marker's .deb files into INCOMING/DISTRO, in one
# transfer from the staging prefix of the attempt that wrote it (exactly the names it lists).
fetch_staged_packages() {
  local distro=$1 marker=$2 sha name instance staging filters=() files=$WORK_DIR/markers/$1.files
  python3 - "$marker" "s3://$SCRATCH_BUCKET/$VERSION/$distro/" >"$files" 2>"$files.err" <<'PY' ||
import json, re, sys
marker, staging = json.load(open(sys.argv[1])), sys.argv[2]
artifacts = marker.get("artifacts", "")
attempt = artifacts[len(staging):] if artifacts.startswith(staging) else None
if attempt is None or not re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*/)?", attempt):
    sys.exit(f"its artifacts {artifacts!r} are not a staging prefix under {staging}")
instance = marker.get("instance", "")
if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", instance):
    sys.exit(f"it names no instance ({instance!r})")
debs = [f for f in marker.get("files", []) if str(f.get("name", "")).endswith(".deb")]
if not debs:
    sys.exit("it names no .deb")
print(instance)
print(artifacts[len("s3://"):].split("/", 1)[1])
for f in debs:
    name, sha = f["name"], str(f.get("sha256", ""))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+~_-]*\.deb", name) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        sys.exit(f"it names {name!r} with sha256 {sha!r}")
    print(sha, name)
PY
    die "the success marker of $distro cannot be published from: $(tail -n 1 -- "$files.err")"
  { read -r instance && read -r staging && while read -r sha name; do
    filters+=(--include "$name")
  done; } <"$files"
  mkdir -p -- "$INCOMING/$distro"
  # The names are plain (checked above), so each filter matches that one key.
  aws s3 cp --only-show-errors --recursive "s3://$SCRATCH_BUCKET/$staging" "$INCOMING/$distro/" \
    --exclude '*' "${filters[@]}" ||
    die "the staged packages of $distro under s3://$SCRATCH_BUCKET/$staging cannot be read"
  while read -r sha name; do
    [[ -f $INCOMING/$distro/$name ]] ||
      die "the success marker of $distro names s3://$SCRATCH_BUCKET/$staging$name, which cannot be read"
    [[ $(sha256sum -- "$INCOMING/$distro/$name" | cut -d' ' -f1) == "$sha" ]] ||
      die "s3://$SCRATCH_BUCKET/$staging$name is not the file the success marker of $distro names (sha256 $sha)"
  done < <(tail -n +3 -- "$files")
  log "publishing the build of $distro by $instance: $(find "$INCOMING/$distro" -name '*.deb' | wc -l) packages"
  printf '%s %s\n' "$distro" "$instance" >>"$PUBLISHED_BUILDS"
}

# dists_of DISTRO: the apt distributions DISTRO's packages go to (DEBIAN_REPOSITORIES of the
# packaging branch: one template per line, DISTRO standing for the codename).
dists_of() {
  local codename template dist
  codename=$(tr -d '[:space:]' <"$PACKAGING_DIR/$1/DISTRIBUTION")
  [[ $codename =~ ^[a-z]+$ ]] || die "$1/DISTRIBUTION holds ${codename@Q}, not a codename"
  while read -r template; do
    [[ -z $template || $template == \#* ]] && continue
    dist=$codename${template#DISTRO}
    [[ $dist =~ ^[a-z0-9][a-z0-9.-]*$ ]] || die "DEBIAN_REPOSITORIES line ${template@Q} gives a bad dist ${dist@Q}"
    printf '%s\n' "$dist"
  done <"$PACKAGING_DIR/DEBIAN_REPOSITORIES"
}

s3_error_is() { # CODE FILE: whether the AWS CLI's error output in FILE is that S3 error code
  grep -q -- "$1" "$2"
}

# published KEY: whether the downloads bucket has KEY, asked by listing: the workers' role
# may list only the repositories' prefixes, and without that a GET of a missing key is a 403.
published() {
  [[ $(aws s3api list-objects-v2 --bucket "$DOWNLOADS_BUCKET" --prefix "$1" --max-items 1 \
    --query 'Contents[0].Key' --output text) == "$1" ]]
}

# write_lease FILE: who holds the lease, and until when. The expiry is past this worker's hard
# timeout, so a lease outlives its holder only when the holder is already gone.
write_lease() {
  local expires=$((JOB_STARTED_EPOCH + (JOB_TIMEOUT_MINUTES + 5) * 60))
  printf '{"holder": "%s", "version": "%s", "acquiredAt": "%s", "expiresAt": "%s", "expiresEpoch": %d}\n' \
    "$WORKER_INSTANCE_ID" "$VERSION" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$(date -u -d "@$expires" +%Y-%m-%dT%H:%M:%SZ)" "$expires" >"$1"
}

lease_field() { # FILE FIELD
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2"
}

# acquire_repository_lease: creates the lease object only if there is none (If-None-Match),
# or replaces an expired one only if it is still the one read (If-Match); otherwise waits.
acquire_repository_lease() {
  local lease=$WORK_DIR/lease.json held=$WORK_DIR/lease-held.json errors=$WORK_DIR/lease.err
  local deadline=$(($(date -u +%s) + REPOSITORY_LEASE_WAIT_MINUTES * 60)) etag held_etag
  while true; do
    write_lease "$lease"
    if etag=$(aws s3api put-object --bucket "$SCRATCH_BUCKET" --key "$LEASE_KEY" --body "$lease" \
      --content-type application/json --if-none-match '*' --query ETag --output text 2>"$errors"); then
      LEASE_ETAG=$etag
      log "took the repository lease s3://$SCRATCH_BUCKET/$LEASE_KEY (until $(lease_field "$lease" expiresAt))"
      return
    fi
    s3_error_is PreconditionFailed "$errors" || s3_error_is ConditionalRequestConflict "$errors" ||
      die "could not take the repository lease: $(cat -- "$errors")"
    if held_etag=$(aws s3api get-object --bucket "$SCRATCH_BUCKET" --key "$LEASE_KEY" "$held" \
      --query ETag --output text 2>/dev/null); then
      if (($(date -u +%s) >= $(lease_field "$held" expiresEpoch))); then
        log "taking over the expired repository lease of $(lease_field "$held" holder)"
        write_lease "$lease"
        if etag=$(aws s3api put-object --bucket "$SCRATCH_BUCKET" --key "$LEASE_KEY" --body "$lease" \
          --content-type application/json --if-match "$held_etag" --query ETag --output text 2>"$errors"); then
          LEASE_ETAG=$etag
          return
        fi
        continue
      fi
      log "waiting for the repository lease: $(lease_field "$held" holder) publishes $(lease_field "$held" version)" \
        "since $(lease_field "$held" acquiredAt) (expires $(lease_field "$held" expiresAt))"
    fi
    (($(date -u +%s) < deadline)) ||
      die "the repositories are still being published by another worker after $REPOSITORY_LEASE_WAIT_MINUTES min"
    sleep "$REPOSITORY_LEASE_POLL_SECONDS"
  done
}

# release_repository_lease: deletes the lease if it is still ours. Ours cannot have expired
# while this worker runs, so nobody else can have taken it over in between.
release_repository_lease() {
  [[ -n $LEASE_ETAG ]] || return 0
  local current
  current=$(aws s3api head-object --bucket "$SCRATCH_BUCKET" --key "$LEASE_KEY" --query ETag --output text 2>/dev/null) || current=
  if [[ $current == "$LEASE_ETAG" ]]; then
    aws s3api delete-object --bucket "$SCRATCH_BUCKET" --key "$LEASE_KEY" >/dev/null && log "released the repository lease"
  else
    log "the repository lease is no longer ours; leaving it"
  fi
  LEASE_ETAG=
}

# Called by common.sh's exit handler whatever the exit status.
job_cleanup() {
  release_repository_lease
}

# pool_path DEB: where a package lives in its repository (what get-build-status checks).
pool_path() {
  local package=hhvm
  [[ $VERSION =~ ^[0-9]{4}\. ]] && package=hhvm-nightly
  printf 'pool/main/%s/%s/%s\n' "${package:0:1}" "$package" "$(basename -- "$1")"
}

# upload_pool OS: this version's packages for OS. A package already published with the same
# SHA-256 is left alone (a re-run); one with other content is never overwritten.
upload_pool() {
  local os=$1 distro deb path sha published_sha
  for distro in "${INCLUDED[@]}"; do
    [[ ${distro%%-*} == "$os" ]] || continue
    for deb in "$INCOMING/$distro"/*.deb; do
      path=$(pool_path "$deb")
      sha=$(sha256sum -- "$deb" | cut -d' ' -f1)
      mkdir -p -- "$(dirname -- "$REPOS/$os/$path")"
      cp -- "$deb" "$REPOS/$os/$path"
      if published "$os/$path"; then
        published_sha=$(aws s3api head-object --bucket "$DOWNLOADS_BUCKET" --key "$os/$path" --query Metadata.sha256 --output text)
        [[ $published_sha == "$sha" ]] || die "$os/$path is published with other content (sha256 $published_sha); not replacing it"
        continue
      fi
      aws s3 cp --only-show-errors --cache-control "$IMMUTABLE" --content-type application/vnd.debian.binary-package \
        --metadata "sha256=$sha" "$deb" "s3://$DOWNLOADS_BUCKET/$os/$path"
    done
  done
}

# A path under a suite that is safe as an AWS CLI filter (no pattern characters) and as a key.
readonly SUITE_PATH='^[A-Za-z0-9][A-Za-z0-9._+~-]*(/[A-Za-z0-9][A-Za-z0-9._+~-]*)*$'

# by_hash_path PATH SHA256: where a client with Acquire-By-Hash reads the index PATH
# (apt_repository.py's by_hash_path).
by_hash_path() {
  if [[ $1 == */* ]]; then
    printf '%s/by-hash/SHA256/%s\n' "${1%/*}" "$2"
  else
    printf 'by-hash/SHA256/%s\n' "$2"
  fi
}

# listed KEY: whether SUITE_LISTING (the suite's keys when this publish began) has KEY.
listed() {
  awk -v key="$1" '$1 == key { found = 1 } END { exit !found }' "$SUITE_LISTING"
}

# fetch_suite OS DIST: the suite's keys and dates (SUITE_LISTING, one listing: whether the
# suite is published, and its by-hash files for retire_old_by_hash), its published InRelease
# (its ETag in SUITE_ETAG, empty for a new suite) and every file it lists, by hash where the
# repository has by-hash files, in one transfer.
fetch_suite() {
  local os=$1 dist=$2 dir=$REPOS/$1/dists/$2 prefix=$1/dists/$2/ fetched=$WORK_DIR/fetched
  local sha size path by_hash filters=() references=$WORK_DIR/previous-references.txt
  rm -rf -- "$dir" "$fetched"
  mkdir -p -- "$dir" "$fetched"
  SUITE_ETAG=
  rm -f -- "$WORK_DIR/previous-InRelease"
  aws s3api list-objects-v2 --bucket "$DOWNLOADS_BUCKET" --prefix "$prefix" \
    --query 'Contents[].[Key, LastModified]' --output text >"$SUITE_LISTING"
  if ! listed "${prefix}InRelease"; then
    log "$os/dists/$dist is new"
    return
  fi
  SUITE_ETAG=$(aws s3api get-object --bucket "$DOWNLOADS_BUCKET" --key "${prefix}InRelease" \
    "$WORK_DIR/previous-InRelease" --query ETag --output text)
  python3 "$APT_REPOSITORY" references "$WORK_DIR/previous-InRelease" >"$references"
  while read -r sha size path; do
    [[ $path =~ $SUITE_PATH && $sha =~ ^[0-9a-f]{64}$ ]] ||
      die "$os/dists/$dist/InRelease lists ${path@Q} (sha256 ${sha@Q}), which this publisher cannot fetch safely"
    filters+=(--include "$(by_hash_path "$path" "$sha")")
  done <"$references"
  if ((${#filters[@]} > 0)); then
    aws s3 cp --only-show-errors --recursive "s3://$DOWNLOADS_BUCKET/$prefix" "$fetched/" --exclude '*' "${filters[@]}"
  fi
  while read -r sha size path; do
    mkdir -p -- "$(dirname -- "$dir/$path")"
    by_hash=$(by_hash_path "$path" "$sha")
    if [[ -f $fetched/$by_hash ]]; then
      cp -- "$fetched/$by_hash" "$dir/$path"
    else
      # A repository written before by-hash (reprepro's): the index under its own name.
      aws s3 cp --only-show-errors "s3://$DOWNLOADS_BUCKET/$prefix$path" "$dir/$path" ||
        die "$os/dists/$dist/InRelease lists $path ($size bytes), which is not published"
    fi
  done <"$references"
}

# update_suite OS DIST DEB_PATH...: the suite's new indices and signed Release files, checked
# as a client would check them, then switched to (see upload order above): one transfer for
# each step of that order.
update_suite() {
  local os=$1 dist=$2 dir=$REPOS/$1/dists/$2 kind path previous=() by_hash=() indices=() releases=()
  shift 2
  fetch_suite "$os" "$dist"
  [[ -n $SUITE_ETAG ]] && previous=(--previous-release "$WORK_DIR/previous-InRelease")
  python3 "$APT_REPOSITORY" update --suite-dir "$dir" --suite "$dist" --origin HHVM --label HHVM \
    --description "Apt repository for HHVM" --component main --architectures "$REPOSITORY_ARCHITECTURES" \
    --pool-root "$REPOS/$os" "${previous[@]}" "$@" >"$WORK_DIR/upload-plan"
  gpg --batch --yes --local-user "$SIGNING_KEY_ID" --clearsign --output "$dir/InRelease" "$dir/Release"
  gpg --batch --yes --local-user "$SIGNING_KEY_ID" --armor --detach-sign --output "$dir/Release.gpg" "$dir/Release"
  gpg --batch --verify "$dir/InRelease" 2>/dev/null || die "$os/dists/$dist/InRelease does not verify"
  python3 "$APT_REPOSITORY" check --suite-dir "$dir" >/dev/null || die "$os/dists/$dist is not consistent"
  while read -r kind path; do
    [[ $path =~ $SUITE_PATH ]] || die "unexpected upload plan path ${path@Q}"
    case $kind in
      by-hash) by_hash+=("$path") ;;
      index) indices+=("$path") ;;
      release) releases+=("$path") ;;
      *) die "unexpected upload plan line: $kind $path" ;;
    esac
  done <"$WORK_DIR/upload-plan"
  upload_files "$os" "$dist" "$IMMUTABLE" "${by_hash[@]}"
  upload_files "$os" "$dist" "$SHORT_LIVED" "${indices[@]}"
  upload_files "$os" "$dist" "$SHORT_LIVED" "${releases[@]}" Release.gpg
  switch_in_release "$os" "$dist"
  invalidate_release_files "$os" "$dist"
  retire_old_by_hash "$os" "$dist"
  PUBLISHED_DISTS+=("$os/$dist")
}

# upload_files OS DIST CACHE_CONTROL PATH...: exactly the suite's files PATH... (plain, see
# SUITE_PATH), in one AWS CLI transfer.
upload_files() {
  local os=$1 dist=$2 cache=$3 path filters=()
  shift 3
  for path; do
    filters+=(--include "$path")
  done
  aws s3 cp --only-show-errors --recursive --cache-control "$cache" --content-type text/plain \
    "$REPOS/$os/dists/$dist/" "s3://$DOWNLOADS_BUCKET/$os/dists/$dist/" --exclude '*' "${filters[@]}"
}

# switch_in_release OS DIST: the one write clients switch on. It must replace exactly the
# InRelease this publish read (or create the first): anything else means another writer
# changed the suite, and its change must not be overwritten.
switch_in_release() {
  local os=$1 dist=$2 condition=(--if-none-match '*')
  [[ -n $SUITE_ETAG ]] && condition=(--if-match "$SUITE_ETAG")
  aws s3api put-object --bucket "$DOWNLOADS_BUCKET" --key "$os/dists/$dist/InRelease" \
    --body "$REPOS/$os/dists/$dist/InRelease" --cache-control "$SHORT_LIVED" --content-type text/plain \
    "${condition[@]}" >/dev/null 2>"$WORK_DIR/switch.err" ||
    die "$os/dists/$dist/InRelease changed while this publish held the lease; nothing was switched: $(cat -- "$WORK_DIR/switch.err")"
  log "switched $os/dists/$dist"
}

# invalidate_release_files OS DIST: right after the switch, the CDN drops exactly the suite's
# Release files (what clients read first); everything they list is new under its name.
invalidate_release_files() {
  local base=/$1/dists/$2 id
  if [[ -z ${CLOUDFRONT_DISTRIBUTION_ID:-} ]]; then
    log "no CLOUDFRONT_DISTRIBUTION_ID: $base is not invalidated (its Release files expire in $RELEASE_CACHE_SECONDS s)"
    return
  fi
  id=$(aws cloudfront create-invalidation --distribution-id "$CLOUDFRONT_DISTRIBUTION_ID" --query Invalidation.Id \
    --output text --invalidation-batch \
    "Paths={Quantity=3,Items=[$base/InRelease,$base/Release,$base/Release.gpg]},CallerReference=$WORKER_INSTANCE_ID$base-$(date -u +%s%N)") ||
    die "$base was switched but CloudFront did not take the invalidation of its Release files; re-run the publish"
  log "invalidated $base/InRelease, Release and Release.gpg ($id)"
}

# retire_old_by_hash OS DIST: the by-hash files of the generation this publish replaced are
# touched once (their date becomes the switch's); by-hash files no Release lists are deleted
# BY_HASH_RETENTION_DAYS after their date (as listed when the publish began). Clients midway
# through an update keep what they need. One transfer each.
retire_old_by_hash() {
  local os=$1 dist=$2 prefix=$1/dists/$2/ key modified sha path cutoff current=$WORK_DIR/current.txt
  local retiring=() expired=()
  python3 "$APT_REPOSITORY" references "$REPOS/$os/dists/$dist/Release" | cut -d' ' -f1 >"$current"
  if [[ -n $SUITE_ETAG ]]; then
    while read -r sha _ path; do
      key=$(by_hash_path "$path" "$sha")
      if ! grep -qx -- "$sha" "$current" && listed "$prefix$key"; then
        retiring+=(--include "$key")
      fi
    done <"$WORK_DIR/previous-references.txt"
  fi
  if ((${#retiring[@]} > 0)); then
    aws s3 cp --only-show-errors --recursive --cache-control "$IMMUTABLE" --content-type text/plain \
      --metadata-directive REPLACE --metadata "retired=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
      "s3://$DOWNLOADS_BUCKET/$prefix" "s3://$DOWNLOADS_BUCKET/$prefix" --exclude '*' "${retiring[@]}"
  fi
  cutoff=$(date -u -d "-$BY_HASH_RETENTION_DAYS days" +%Y-%m-%dT%H:%M:%S)
  while read -r key modified; do
    [[ $key == "$prefix"*/by-hash/SHA256/* || $key == "${prefix}by-hash/SHA256/"* ]] || continue
    grep -qx -- "${key##*/}" "$current" && continue
    if [[ ! ${key#"$prefix"} =~ $SUITE_PATH ]]; then
      log "leaving $key: not a name this publisher writes"
    elif [[ ${modified:0:19} < "$cutoff" ]]; then
      log "deleting $key, listed by no Release since ${modified:0:19}"
      expired+=(--include "${key#"$prefix"}")
    fi
  done <"$SUITE_LISTING"
  if ((${#expired[@]} > 0)); then
    aws s3 rm --only-show-errors --recursive "s3://$DOWNLOADS_BUCKET/$prefix" --exclude '*' "${expired[@]}"
  fi
}

publish() {
  local os distro dist deb debs
  for os in debian ubuntu; do
    compgen -G "$INCOMING/$os-*" >/dev/null || continue
    upload_pool "$os"
    for distro in "${INCLUDED[@]}"; do
      [[ ${distro%%-*} == "$os" ]] || continue
      debs=()
      for deb in "$INCOMING/$distro"/*.deb; do
        debs+=("$(pool_path "$deb")")
      done
      while read -r dist; do
        update_suite "$os" "$dist" "${debs[@]}"
        printf '%s %s\n' "$distro" "$os/$dist" >>"$PUBLISHED_SUITES"
      done < <(dists_of "$distro")
    done
  done
}

# write_success_marker: besides the usual fields, "published": for each distro, the build
# published (its marker's instance) and the suites it went to, which Verify Release Published
# reads back from the repositories.
write_success_marker() {
  write_manifest "$WORK_DIR/manifest.json" "" "packagingBranch=$PACKAGING_BRANCH" \
    "distros=${INCLUDED[*]}" "dists=${PUBLISHED_DISTS[*]}"
  python3 - "$WORK_DIR/manifest.json" "$PUBLISHED_BUILDS" "$PUBLISHED_SUITES" >"$WORK_DIR/marker.json" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
published = {}
for line in open(sys.argv[2]):
    distro, instance = line.split()
    published[distro] = {"instance": instance, "suites": []}
for line in open(sys.argv[3]):
    distro, suite = line.split()
    published[distro]["suites"].append(suite)
manifest["published"] = published
json.dump(manifest, sys.stdout, indent=2, sort_keys=True)
sys.stdout.write("\n")
PY
  upload_marker "$WORK_DIR/marker.json"
}

worker_ready
install_packages gnupg git python3
require_tools aws curl dpkg-deb git gpg python3 sha256sum
clone_packaging
import_signing_key
fetch_built_packages
acquire_repository_lease
publish
release_repository_lease
write_success_marker
