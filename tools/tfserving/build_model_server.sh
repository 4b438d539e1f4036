#!/usr/bin/env bash
# Links deepctr-ops into tensorflow_model_server. TF Serving cannot load op
# libraries at run time, so a SavedModel that uses DeepCTR> ops needs a server
# binary with the ops compiled in.
#
#   tools/tfserving/build_model_server.sh /path/to/serving [--gpu]
#
# /path/to/serving is a checkout of tensorflow/serving at the release that
# matches the TensorFlow the model was exported with (e.g. tag 2.21.0 for
# TF 2.21). The script
#   1. adds this repository to its WORKSPACE as @deepctr_ops (local_repository);
#   2. adds "@deepctr_ops//:deepctr_ops" to SUPPORTED_TENSORFLOW_OPS in
#      tensorflow_serving/model_servers/BUILD (TF Serving's hook for custom ops);
#   3. builds //tensorflow_serving/model_servers:tensorflow_model_server, with
#      --config=cuda for --gpu (the ops' CUDA kernels then build too).
# It edits the checkout in place and is idempotent. See README.md here.
set -euo pipefail
serving="${1:?usage: $0 /path/to/tensorflow-serving-checkout [--gpu]}"
gpu="${2:-}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
workspace="$serving/WORKSPACE"
servers_build="$serving/tensorflow_serving/model_servers/BUILD"
[ -f "$workspace" ] && [ -f "$servers_build" ] || {
  echo "$serving does not look like a tensorflow/serving checkout" >&2; exit 2; }

if ! grep -q 'name = "deepctr_ops"' "$workspace"; then
  cat >> "$workspace" <<EOW

local_repository(
    name = "deepctr_ops",
    path = "$here",
)
EOW
fi
if ! grep -q '@deepctr_ops//:deepctr_ops' "$servers_build"; then
  python3 - "$servers_build" <<'EOP'
import re, sys
path = sys.argv[1]
text = open(path).read()
match = re.search(r"SUPPORTED_TENSORFLOW_OPS\s*=\s*(if_v2\(\[\]\)\s*\+\s*)?[^\[]*\[", text)
if not match:
    sys.exit("SUPPORTED_TENSORFLOW_OPS not found in " + path)
at = match.end()
text = text[:at] + '\n    "@deepctr_ops//:deepctr_ops",' + text[at:]
open(path, "w").write(text)
EOP
fi
config=(--config=release)
[ "$gpu" = "--gpu" ] && config+=(--config=cuda)
cd "$serving"
bazel build "${config[@]}" //tensorflow_serving/model_servers:tensorflow_model_server
echo "built: $serving/bazel-bin/tensorflow_serving/model_servers/tensorflow_model_server"
