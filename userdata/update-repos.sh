#!/bin/bash
# Adds the packages built for VERSION to the apt repositories in s3://DOWNLOADS_BUCKET/{debian,ubuntu}/
# with reprepro, S3 being the source of truth: the repositories' metadata is synced down, the
# new packages are included, the pool is uploaded first and the metadata (signed Release and
# InRelease) last. Only distros whose build wrote its success marker are included.
# Variables and effects: docs/workers.md.
#
# usage: VERSION=4.168.2 PACKAGING_BRANCH=HHVM-4.168 [DISTROS='debian-12-bookworm ...'] update-repos.sh
set -euo pipefail
if ! declare -F worker_begin >/dev/null; then
  # shellcheck source-path=SCRIPTDIR source=common.sh
  source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"
fi

# Metadata only is synced, so even a large repository takes minutes, not hours.
worker_begin update-repositories 120

require_variables VERSION PACKAGING_BRANCH SCRATCH_BUCKET DOWNLOADS_BUCKET
require_pattern VERSION "$VERSION_PATTERN" "a version (YYYY.MM.DD or x.y.z)"
require_pattern PACKAGING_BRANCH "$BRANCH_PATTERN" "master or HHVM-x.y"
: "${DISTROS:=}"
for distro in $DISTROS; do
  [[ $distro =~ $DISTRO_PATTERN ]] || die "DISTROS holds ${distro@Q}, which is not a distro name"
done

readonly INCOMING=$WORK_DIR/incoming
readonly REPOS=$WORK_DIR/repos
INCLUDED=()
UPDATED_REPOS=()
PUBLISHED_DISTS=()

# fetch_built_packages: the staged packages of every distro (those in DISTROS, or all staged
# for VERSION) whose success marker exists and whose files match their SHA256SUMS.
fetch_built_packages() {
  rm -rf -- "$INCOMING"
  mkdir -p -- "$INCOMING"
  if [[ -n $DISTROS ]]; then
    for distro in $DISTROS; do
      aws s3 sync --only-show-errors "s3://$SCRATCH_BUCKET/$VERSION/$distro/" "$INCOMING/$distro/"
    done
  else
    aws s3 sync --only-show-errors "s3://$SCRATCH_BUCKET/$VERSION/" "$INCOMING/"
  fi
  local dir distro
  for dir in "$INCOMING"/*/; do
    [[ -d $dir ]] || continue
    distro=$(basename -- "$dir")
    if [[ ! $distro =~ $DISTRO_PATTERN ]]; then
      continue
    fi
    if ! aws s3api head-object --bucket "$SCRATCH_BUCKET" \
      --key "$(marker_key "$VERSION" binary-package "$distro")" >/dev/null 2>&1; then
      log "skipping $distro: its build wrote no success marker"
      continue
    fi
    (cd -- "$dir" && sha256sum --check --quiet SHA256SUMS) || die "the staged files of $distro do not match their SHA256SUMS"
    INCLUDED+=("$distro")
  done
  ((${#INCLUDED[@]} > 0)) || die "no distro of $VERSION has a successful build to publish"
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

# sync_repository_metadata OS: conf/, db/ and dists/ of the repository. The pool (terabytes)
# stays in S3: reprepro keeps unreferenced files and only adds new ones, so it needs the
# database, not the old package files.
sync_repository_metadata() {
  mkdir -p -- "$REPOS/$1/conf"
  aws s3 sync --only-show-errors --exclude 'pool/*' "s3://$DOWNLOADS_BUCKET/$1/" "$REPOS/$1/"
  touch -- "$REPOS/$1/conf/distributions"
  UPDATED_REPOS+=("$1")
}

# ensure_distribution OS DIST: declares DIST in the repository's conf/distributions if new.
ensure_distribution() {
  local base=$REPOS/$1
  if grep -qx "Codename: $2" "$base/conf/distributions"; then
    return
  fi
  log "creating distribution $2 in the $1 repository"
  if [[ -s $base/conf/distributions ]]; then
    printf '\n' >>"$base/conf/distributions"
  fi
  printf '%s\n' "Origin: HHVM" "Label: HHVM" "Codename: $2" "Architectures: i386 amd64 source" \
    "Components: main" "Description: Apt repository for HHVM ($PACKAGING_BRANCH)" \
    "SignWith: $SIGNING_KEY_ID" >>"$base/conf/distributions"
  reprepro -b "$base" export "$2"
}

include_packages() {
  local distro os dist changes
  for distro in "${INCLUDED[@]}"; do
    os=${distro%%-*}
    if [[ ! " ${UPDATED_REPOS[*]} " == *" $os "* ]]; then
      sync_repository_metadata "$os"
    fi
    while read -r dist; do
      ensure_distribution "$os" "$dist"
      for changes in "$INCOMING/$distro"/*.changes; do
        [[ -e $changes ]] || die "$distro has no .changes file"
        reprepro -b "$REPOS/$os" --keepunreferencedfiles --keepunusednewfiles --ignore=wrongdistribution \
          include "$dist" "$changes"
      done
      [[ -s $REPOS/$os/dists/$dist/InRelease ]] || die "reprepro left $os/dists/$dist unsigned"
      PUBLISHED_DISTS+=("$os/$dist")
    done < <(dists_of "$distro")
  done
}

# Packages first, so no index ever names a file that is not there yet; metadata last.
upload_repositories() {
  local os
  for os in "${UPDATED_REPOS[@]}"; do
    if [[ -d $REPOS/$os/pool ]]; then
      aws s3 sync --only-show-errors "$REPOS/$os/pool/" "s3://$DOWNLOADS_BUCKET/$os/pool/"
    fi
  done
  for os in "${UPDATED_REPOS[@]}"; do
    aws s3 sync --only-show-errors --exclude 'pool/*' "$REPOS/$os/" "s3://$DOWNLOADS_BUCKET/$os/"
  done
}

write_success_marker() {
  write_manifest "$WORK_DIR/marker.json" "" "packagingBranch=$PACKAGING_BRANCH" \
    "distros=${INCLUDED[*]}" "dists=${PUBLISHED_DISTS[*]}"
  upload_marker "$WORK_DIR/marker.json"
}

worker_ready
install_packages reprepro gnupg git python3
clone_packaging
import_signing_key
fetch_built_packages
include_packages
upload_repositories
write_success_marker
