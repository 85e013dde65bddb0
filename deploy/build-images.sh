#!/usr/bin/env bash
# Build the babelwatch images (deploy/Dockerfile) with the tags compose and Kubernetes use.
#   deploy/build-images.sh [TARGET...]     default: runtime triton (here add: tansu redis)
# BASE_IMAGE: the Debian 12 base (default: the Dockerfile's pinned public one; deploy/ci-compose.sh
# passes a locally made one). BW_TAG: image tag (default dev). Prints each image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${BW_TAG:-dev}
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(runtime triton)
# a TLS-inspecting proxy's CAs, so pip inside the build trusts it (nothing to copy elsewhere)
cp /usr/local/share/ca-certificates/*.crt deploy/extra-ca/ 2>/dev/null || true
# BuildKit builds only the stages a target needs; Debian's docker.io client has it built in
export DOCKER_BUILDKIT=1
DOCKER=${DOCKER:-$([ -x /usr/bin/docker ] && echo /usr/bin/docker || echo docker)}
args=(); [ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
for t in "${targets[@]}"; do
  "$DOCKER" build -q -f deploy/Dockerfile --target "$t" "${args[@]}" -t "babelwatch-$t:$TAG" . >/dev/null
  echo "babelwatch-$t:$TAG $("$DOCKER" image inspect -f '{{.Size}}' "babelwatch-$t:$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
done
