#!/usr/bin/env bash
# Checks a `preview` run on the reviews HTTPRoute (jobs ambient-httproute and linkerd-httproute of
# .github/workflows/e2e-kind.yml), whichever mesh serves it:
# - the step says previewed, and the canary (v3) served every request of its smoke test;
# - the route has the preview rule first: an exact match of the preview header, to reviews-v3 alone; the rule the
#   preview was made from is still there, unchanged (all on reviews-v1, as deployed);
# - real requests with the header are served by reviews v3, and without it by v1 (Gateway API ranks a rule with a
#   header match above one without, whatever their order: apis/v1/httproute_types.go, HTTPRouteRule precedence).
# Environment: RESULT, REPORT (the step's outputs), PREVIEW (the header value), GATEWAY_URL, RUNNER_TEMP (with
# reviews-route-before.json, saved by the kind-bookinfo action).
set -euo pipefail

test "$RESULT" = previewed
jq -e '.steps[0].smoke.byVersion.v3.requests == .steps[0].smoke.requests' "$REPORT"

route="$(kubectl -n bookinfo get httproute reviews -o json)"
echo "$route" | jq '.spec.rules'
echo "$route" | jq -e --arg v "$PREVIEW" '
  (.spec.rules[0].name | startswith("istio-canary-preview-"))
  and (.spec.rules[0].matches | length > 0)
  and all(.spec.rules[0].matches[]; any(.headers[]?; .name == "user-agent" and .value == $v and (.type // "Exact") == "Exact"))
  and (.spec.rules[0].backendRefs | map(.name)) == ["reviews-v3"]'
jq -n -e --argjson before "$(jq '.spec.rules' "$RUNNER_TEMP/reviews-route-before.json")" \
  --argjson now "$(echo "$route" | jq '.spec.rules[1:]')" '$before == $now'

# Ten requests, each answered by productpage with the reviews version that served it (or none).
served_by() {
  for _ in $(seq 1 10); do
    curl -fsS "$@" "$GATEWAY_URL/productpage" | grep -E -o 'reviews-v[0-9]+' || echo none
  done | sort | uniq -c
}
with_header="$(served_by -H "user-agent: $PREVIEW")"
without="$(served_by)"
echo "with the preview header: $with_header"
echo "without it:              $without"
if ! grep -q 'reviews-v3' <<< "$with_header" || grep -q -e 'reviews-v1' -e 'none' <<< "$with_header"; then
  echo "::error::requests with the preview header were not all served by reviews v3"
  exit 1
fi
if ! grep -q 'reviews-v1' <<< "$without" || grep -q -e 'reviews-v3' -e 'none' <<< "$without"; then
  echo "::error::requests without the preview header were not all served by reviews v1"
  exit 1
fi
