#!/bin/bash
# Publishes the source of release VERSION: pushes tag HHVM-VERSION from the staging repository
# to the public one, also as branch HHVM-x.y, then copies the tarball, its signature and
# checksums from s3://SCRATCH_BUCKET/ to s3://DOWNLOADS_BUCKET/source/ and writes the success
# marker. Variables and effects: docs/workers.md.
#
# usage: VERSION=4.168.2 publish-release-source.sh
set -euo pipefail
if ! declare -F worker_begin >/dev/null; then
  # shellcheck source-path=SCRIPTDIR source=common.sh
  source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"
fi

# A fetch of one tag's history and two pushes.
worker_begin publish-release-source 30

require_variables VERSION SCRATCH_BUCKET DOWNLOADS_BUCKET
require_pattern VERSION "$RELEASE_PATTERN" "a release version x.y.z (nightlies are published when built)"
if [[ $VERSION =~ ^[0-9]{4}\.[0-9]{2}\.[0-9]{2}$ ]]; then
  die "VERSION=$VERSION is not a release version: it is a nightly (nightlies are published when built)"
fi

: "${STAGING_REPO_URL:=git@github.com:hhvm/hhvm-staging.git}"
: "${PUBLIC_REPO_URL:=git@github.com:facebook/hhvm.git}"
: "${STAGING_DEPLOY_KEY_SECRET_ID:=hhvm/staging-repo-deploy-key}"
: "${PUBLIC_DEPLOY_KEY_SECRET_ID:=hhvm/public-repo-deploy-key}"

readonly TAG=HHVM-$VERSION
readonly BRANCH=HHVM-${VERSION%.*}
readonly TARBALL=hhvm-$VERSION.tar.gz
readonly REPO=$WORK_DIR/hhvm.git

push_tag_and_branch() {
  local staging_ssh public_ssh
  staging_ssh=$(deploy_key_ssh_command "$STAGING_DEPLOY_KEY_SECRET_ID" staging-deploy-key)
  public_ssh=$(deploy_key_ssh_command "$PUBLIC_DEPLOY_KEY_SECRET_ID" public-deploy-key)
  rm -rf -- "$REPO"
  git init --quiet --bare -- "$REPO"
  GIT_SSH_COMMAND=$staging_ssh git -C "$REPO" fetch --quiet --no-tags -- "$STAGING_REPO_URL" \
    "refs/tags/$TAG:refs/tags/$TAG"
  TAG_COMMIT=$(git -C "$REPO" rev-parse --verify "refs/tags/$TAG^{commit}") || die "tag $TAG names no commit"
  # A plain push: an existing tag or branch that differs is refused, never overwritten.
  GIT_SSH_COMMAND=$public_ssh git -C "$REPO" push --quiet -- "$PUBLIC_REPO_URL" \
    "refs/tags/$TAG:refs/tags/$TAG" "$TAG_COMMIT:refs/heads/$BRANCH"
}

copy_tarball() {
  local suffix
  for suffix in "" .sig .sha256; do
    aws s3 cp --only-show-errors "s3://$SCRATCH_BUCKET/$TARBALL$suffix" "s3://$DOWNLOADS_BUCKET/source/$TARBALL$suffix"
  done
  aws s3 cp --only-show-errors "s3://$DOWNLOADS_BUCKET/source/$TARBALL.sha256" "$WORK_DIR/$TARBALL.sha256"
}

write_success_marker() {
  local tarball_sha256
  tarball_sha256=$(awk -v name="$TARBALL" '$2 == name || $2 == "*" name { print $1 }' "$WORK_DIR/$TARBALL.sha256")
  [[ -n $tarball_sha256 ]] || die "$TARBALL.sha256 lists no checksum for $TARBALL"
  write_manifest "$WORK_DIR/marker.json" "" "tag=$TAG" "branch=$BRANCH" "tagCommit=$TAG_COMMIT" \
    "publicRepository=$PUBLIC_REPO_URL" "sourceTarball=s3://$DOWNLOADS_BUCKET/source/$TARBALL" \
    "sourceTarballSha256=$tarball_sha256"
  upload_marker "$WORK_DIR/marker.json"
}

worker_ready
install_packages git python3 openssh-client
require_tools aws curl git python3 ssh
push_tag_and_branch
copy_tarball
write_success_marker
