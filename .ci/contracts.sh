#!/usr/bin/env bash
# The contract evolution guard: the protos under proto/ may not break the last
# released contract (proto/released/v*.binpb, a buf image written at each release)
# unless CHANGELOG.md records the break: a "### Breaking" heading with at least one
# entry inside its "## [Unreleased]" section. Usage: .ci/contracts.sh [path to buf]
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${1:-.ci/tools/node_modules/.bin/buf}

released=$(ls proto/released/v*.binpb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$released" ]; then
  echo "no released contract under proto/released/: nothing to compare with" >&2
  exit 1
fi
echo "comparing proto/ with $released"
if findings=$("$BUF" breaking --against "$released" 2>&1); then
  echo "no breaking change since $(basename "$released" .binpb)"
  exit 0
fi

# The Unreleased section: from its heading to the next release heading.
unreleased=$(awk '/^## \[Unreleased\]/{inside=1; next} /^## \[/{inside=0} inside' CHANGELOG.md)
# Entries under its "### Breaking" heading, up to the next "###".
recorded=$(printf '%s\n' "$unreleased" |
  awk '/^### Breaking/{inside=1; next} /^### /{inside=0} inside && /^- /' | wc -l)
printf '%s\n' "$findings"
if [ "$recorded" -gt 0 ]; then
  echo "breaking changes since $(basename "$released" .binpb); CHANGELOG.md records $recorded under Unreleased / Breaking: allowed"
  exit 0
fi
cat >&2 <<MSG
The contract breaks $(basename "$released" .binpb) (above) and CHANGELOG.md's
"## [Unreleased]" section has no "### Breaking" entry. Either keep the wire
contract compatible, or record the break there for the next version.
MSG
exit 1
