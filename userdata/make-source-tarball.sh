#!/bin/bash
# Makes the source tarball of VERSION, signs it, uploads tarball, signature and checksums to
# s3://SOURCE_BUCKET/SOURCE_KEY{,.sig,.sha256} (under temporary names first, moved into place
# last), then writes the success marker.
# Variables and effects: docs/workers.md.
#
# usage: VERSION=4.168.2 IS_NIGHTLY=false PACKAGING_BRANCH=HHVM-4.168 SOURCE_BUCKET=hhvm-scratch \
#          SOURCE_KEY=hhvm-4.168.2.tar.gz make-source-tarball.sh
set -euo pipefail
if ! declare -F worker_begin >/dev/null; then
  # shellcheck source-path=SCRIPTDIR source=common.sh
  source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"
fi

# Cloning HHVM with its submodules and compressing it takes well under an hour.
worker_begin source-tarball 60

require_variables VERSION IS_NIGHTLY PACKAGING_BRANCH SOURCE_BUCKET SOURCE_KEY SCRATCH_BUCKET
require_pattern VERSION "$VERSION_PATTERN" "a version (YYYY.MM.DD or x.y.z)"
require_pattern PACKAGING_BRANCH "$BRANCH_PATTERN" "master or HHVM-x.y"
require_pattern IS_NIGHTLY '^(true|false)$' "true or false"

# Run from the packaging checkout; writes the tarball named like SOURCE_KEY's last segment to
# OUT_DIR. It reads the source repositories below over SSH with the deploy keys it is given.
: "${SOURCE_TARBALL_COMMAND:=bin/make-source-tarball}"
: "${OUT_DIR:=/var/out}"
: "${STAGING_REPO_URL:=git@github.com:hhvm/hhvm-staging.git}"
: "${PUBLIC_REPO_URL:=git@github.com:facebook/hhvm.git}"
: "${NIGHTLY_SOURCE_REPO_URL:=https://github.com/facebook/hhvm.git}"
: "${STAGING_DEPLOY_KEY_SECRET_ID:=hhvm/staging-repo-deploy-key}"
: "${PUBLIC_DEPLOY_KEY_SECRET_ID:=hhvm/public-repo-deploy-key}"

make_tarball() {
  local staging_ssh public_ssh
  staging_ssh=$(deploy_key_ssh_command "$STAGING_DEPLOY_KEY_SECRET_ID" staging-deploy-key)
  public_ssh=$(deploy_key_ssh_command "$PUBLIC_DEPLOY_KEY_SECRET_ID" public-deploy-key)
  mkdir -p -- "$OUT_DIR"
  log "making the tarball with $SOURCE_TARBALL_COMMAND"
  # The command picks the SSH command per repository: staging to read release tags and push
  # nightly tags, public to push nightly tags.
  (
    cd -- "$PACKAGING_DIR"
    export VERSION IS_NIGHTLY OUT_DIR STAGING_REPO_URL PUBLIC_REPO_URL NIGHTLY_SOURCE_REPO_URL
    export STAGING_GIT_SSH_COMMAND=$staging_ssh PUBLIC_GIT_SSH_COMMAND=$public_ssh GIT_SSH_COMMAND=$staging_ssh
    # shellcheck disable=SC2086 # the command may carry its own arguments
    $SOURCE_TARBALL_COMMAND
  ) || die "the source tarball command failed"
  TARBALL=$OUT_DIR/$(basename -- "$SOURCE_KEY")
  [[ -s $TARBALL ]] || die "the source tarball command did not produce $TARBALL"
}

sign_tarball() {
  import_signing_key
  gpg --batch --yes --armor --local-user "$SIGNING_KEY_ID" --detach-sign --output "$TARBALL.sig" "$TARBALL"
  local name
  name=$(basename -- "$TARBALL")
  write_checksums "$OUT_DIR" "$name" "$name.sig" >"$TARBALL.sha256"
}

# upload_tarball: under temporary names in the scratch bucket first (a slow or failed upload
# never touches the real names), then copied into place within S3 — signature and checksums
# before the tarball — and the temporary copies removed. The marker, written after this, is
# what makes the set count as present (hhvm-have-source-tarball).
upload_tarball() {
  local destination=s3://$SOURCE_BUCKET/$SOURCE_KEY name suffix
  local uploads=s3://$SCRATCH_BUCKET/uploads/source-tarball/$WORKER_INSTANCE_ID
  name=$(basename -- "$TARBALL")
  for suffix in "" .sig .sha256; do
    aws s3 cp --only-show-errors "$TARBALL$suffix" "$uploads/$name$suffix"
  done
  for suffix in .sig .sha256 ""; do
    aws s3 cp --only-show-errors "$uploads/$name$suffix" "$destination$suffix"
  done
  aws s3 rm --only-show-errors --recursive "$uploads/"
  log "uploaded $destination, .sig and .sha256"
}

write_success_marker() {
  local files=$WORK_DIR/artifacts
  rm -rf -- "$files"
  mkdir -p -- "$files"
  ln -s -- "$TARBALL" "$TARBALL.sig" "$TARBALL.sha256" "$files/"
  write_manifest "$WORK_DIR/marker.json" "$files" "packagingBranch=$PACKAGING_BRANCH" \
    "sourceTarball=s3://$SOURCE_BUCKET/$SOURCE_KEY" \
    "sourceTarballSha256=$(sha256sum -- "$TARBALL" | cut -d' ' -f1)"
  upload_marker "$WORK_DIR/marker.json"
}

worker_ready
install_packages git curl python3 gnupg openssh-client
require_tools aws curl git gpg python3 sha256sum ssh
clone_packaging
make_tarball
sign_tarball
upload_tarball
write_success_marker
