#!/bin/bash
# Builds the binary packages of VERSION for DISTRO from the source tarball at
# s3://SOURCE_BUCKET/SOURCE_KEY and stages them in s3://SCRATCH_BUCKET/VERSION/DISTRO/INSTANCE/
# (this attempt's own prefix: an earlier attempt's files are never mixed in), then writes the
# success marker, which names that prefix and every file's SHA-256. Variables and effects: docs/workers.md.
#
# usage: VERSION=4.168.2 IS_NIGHTLY=false DISTRO=debian-12-bookworm PACKAGING_BRANCH=HHVM-4.168 \
#          SOURCE_BUCKET=hhvm-scratch SOURCE_KEY=hhvm-4.168.2.tar.gz make-binary-package.sh
set -euo pipefail
if ! declare -F worker_begin >/dev/null; then
  # shellcheck source-path=SCRIPTDIR source=common.sh
  source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"
fi

# The build takes one to two hours on the default instance type; three is the original's bound.
worker_begin binary-package 180

require_variables VERSION IS_NIGHTLY DISTRO PACKAGING_BRANCH SOURCE_BUCKET SOURCE_KEY SCRATCH_BUCKET
require_pattern VERSION "$VERSION_PATTERN" "a version (YYYY.MM.DD or x.y.z)"
require_pattern DISTRO "$DISTRO_PATTERN" "a distro such as debian-12-bookworm"
require_pattern PACKAGING_BRANCH "$BRANCH_PATTERN" "master or HHVM-x.y"
require_pattern IS_NIGHTLY '^(true|false)$' "true or false"

: "${NODIST_BUCKET:=hhvm-nodist}"
# Run from the packaging checkout with the distro as argument; writes the packages to ./out.
: "${BUILD_COMMAND:=bin/make-package-in-throwaway-container}"

build_packages() {
  local out=$PACKAGING_DIR/out tarball
  tarball=$out/$(basename -- "$SOURCE_KEY")
  mkdir -p -- "$out" "$WORK_DIR/nodist"
  aws s3 cp --only-show-errors "s3://$SOURCE_BUCKET/$SOURCE_KEY" "$tarball"
  SOURCE_TARBALL_SHA256=$(sha256sum -- "$tarball" | cut -d' ' -f1)
  # Build-dependency cache of this distro: saves rebuilding what rarely changes.
  aws s3 sync --only-show-errors "s3://$NODIST_BUCKET/$DISTRO/" "$WORK_DIR/nodist/"

  log "building with $BUILD_COMMAND $DISTRO"
  # shellcheck disable=SC2086 # the command may carry its own arguments
  (cd -- "$PACKAGING_DIR" && VERSION=$VERSION IS_NIGHTLY=$IS_NIGHTLY NODIST_DIR=$WORK_DIR/nodist $BUILD_COMMAND "$DISTRO") ||
    die "the build command failed"

  rm -f -- "$tarball"
  local packages=("$out"/*.deb)
  [[ -e ${packages[0]} ]] || die "the build produced no .deb in $out"
  local files=()
  mapfile -t files < <(cd -- "$out" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%f\n' | sort)
  write_checksums "$out" "${files[@]}" >"$WORK_DIR/SHA256SUMS"
  mv -- "$WORK_DIR/SHA256SUMS" "$out/SHA256SUMS"
}

upload_packages() {
  local out=$PACKAGING_DIR/out
  aws s3 cp --only-show-errors --recursive "$out/" "s3://$SCRATCH_BUCKET/$STAGING_PREFIX"
  aws s3 sync --only-show-errors "$WORK_DIR/nodist/" "s3://$NODIST_BUCKET/$DISTRO/"
}

write_success_marker() {
  local package_version
  package_version=$VERSION-$(tr -d '[:space:]' <"$PACKAGING_DIR/$DISTRO/PKGVER")
  write_manifest "$WORK_DIR/marker.json" "$PACKAGING_DIR/out" "distro=$DISTRO" \
    "packageVersion=$package_version" "sourceTarballSha256=$SOURCE_TARBALL_SHA256" \
    "packagingBranch=$PACKAGING_BRANCH" "artifacts=s3://$SCRATCH_BUCKET/$STAGING_PREFIX"
  upload_marker "$WORK_DIR/marker.json" "$DISTRO"
}

JOB_DISTRO=$DISTRO
worker_ready
STAGING_PREFIX=$VERSION/$DISTRO/$WORKER_INSTANCE_ID/
install_packages docker.io git curl python3
tools=(aws curl git python3 sha256sum)
# The default build command runs the build in Docker; another one brings its own tools.
[[ $BUILD_COMMAND != bin/make-package-in-throwaway-container ]] || tools+=(docker)
require_tools "${tools[@]}"
clone_packaging
build_packages
upload_packages
write_success_marker
