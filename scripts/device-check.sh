#!/usr/bin/env bash
# The CUDA checks and a short GPU bench on a GPU machine that has neither Node nor internet.
#
# Here (a built checkout: npm ci done; needs internet for PyPI and the npm registry, and python3):
#   scripts/device-check.sh build [DIR=.device-check]
# (`OUT=/tmp/x scripts/device-check.sh run DIR --smoke` rehearses the on-device run on a CPU-only machine:
# the CUDA checks then fail by design, but the unpacking, the bundled script and the reports are tried.)
# packs the production install, the Node binary, ORT's CUDA provider (fetched by `img2prompt gpu install`
# from the very onnxruntime-gpu wheel users get, then pruned to sm_90 code with
# ../shared/tools/gpu-bundle/prune-fatbin.py so it compresses), bench/device/gpu-check.ts (bundled into
# one .mjs by esbuild) and the few assets it reads, as xz parts of at most 56 MiB in DIR (with the checkout, under the 64 MiB a call carries). DIR is added
# to .git/info/exclude, so it travels only when `carry` names it.
#
# With the device tool (it sends the checkout the session started in, e.g. /work/main, at most 64 MiB a
# call): one call per part but the last keeps that part in /tmp there, the last call runs everything.
# Make the calls back to back: a machine idle for 30 s is given back, and /tmp with it. For two parts:
#   run(command="bash scripts/device-check.sh stash", carry=[".device-check/part00", ".device-check/SHA256SUMS"], timeout_s=120)
#   run(command="bash scripts/device-check.sh run", carry=[".device-check/part01", ".device-check/SHA256SUMS"], timeout_s=540)
# (`build` prints the exact calls for the number of parts it made.) The last call unpacks to
# /tmp/img2prompt-gpu, records nvidia-smi, `gpu install --check` without and then with the library
# folders it names added to LD_LIBRARY_PATH, and `info`, then runs the checks and the bench (about 6
# minutes at most). $OUT gets environment.txt, gpu-check.log, device-check.json and device-check.md;
# the exit code is 1 when a check failed.
set -euo pipefail
mode=${1:-build}
parts_tmp=/tmp/img2prompt-parts
here=$(cd "$(dirname "$0")/.." && pwd)

stash() {
  local dir=$1
  mkdir -p "$parts_tmp"
  cp "$dir"/part* "$dir"/SHA256SUMS "$parts_tmp"/ 2>/dev/null || true
  ls -l "$parts_tmp"
}

case "$mode" in
build)
  dir=${2:-.device-check}
  cd "$here"
  [ -d node_modules ] && ls build/Release/*.node >/dev/null || { echo "build the project first (npm ci)" >&2; exit 1; }
  prune="$here/../shared/tools/gpu-bundle/prune-fatbin.py"
  [ -f "$prune" ] || { echo "$prune not found (../shared beside the checkout)" >&2; exit 1; }
  exclude="$(git rev-parse --git-common-dir)/info/exclude"
  grep -qxF "/$dir/" "$exclude" 2>/dev/null || echo "/$dir/" >>"$exclude"
  npx tsc -p .
  cli() { node dist/src/cli/bin.cjs "$@"; }
  minilm=$(cli models path minilm 2>/dev/null || true)
  [ -f "$minilm/tokenizer.json" ] || { cli models pull minilm >&2; minilm=$(cli models path minilm); }

  stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
  app="$stage/app"; assets="$app/device-assets"
  mkdir -p "$app/build/Release" "$app/device" "$stage/nodebin" "$assets/clip-tokenizer" "$assets/minilm-tokenizer"
  cp -a package.json package-lock.json dist "$app/"
  cp build/Release/*.node "$app/build/Release/"
  (cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
  x64="$app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
  find "$app/node_modules/onnxruntime-node/bin/napi-v6" -mindepth 2 -maxdepth 2 -type d ! -path '*/linux/x64' -exec rm -rf {} +
  rm -rf "$app/node_modules/cmake-js" "$app/node_modules/node-addon-api" "$app/node_modules/node-api-headers"
  find "$app/node_modules" -type d -path '*protobufjs/cli' -prune -exec rm -rf {} +

  # The provider exactly as users get it; exit 1 only says CUDA is not usable on this machine.
  cli gpu install --ort-dir "$x64" --keep-wheel >/dev/null || true
  [ -f "$x64/libonnxruntime_providers_cuda.so" ] && [ -f "$x64/libonnxruntime_providers_shared.so" ] || { echo "gpu install did not install the provider" >&2; exit 1; }
  python3 "$prune" "$x64/libonnxruntime_providers_cuda.so" prune "$stage/cuda.so" 90 >/dev/null
  mv "$stage/cuda.so" "$x64/libonnxruntime_providers_cuda.so"

  node_modules/.bin/esbuild bench/device/gpu-check.ts --bundle --platform=node --format=esm --target=node20 \
    --packages=external --log-level=warning --outfile="$app/device/gpu-check.mjs"
  a=../shared/assets
  cp -r "$a/eval/kaggle-sample/images" "$assets/images"
  cp "$a"/labels/{mediums,artists,flavors}.txt "$assets/"
  cp "$a"/tokenizers/clip/hf-openai-clip-vit-large-patch14/{tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.json,merges.txt} "$assets/clip-tokenizer/"
  for f in tokenizer.json tokenizer_config.json special_tokens_map.json sentence_bert_config.json vocab.txt; do cp "$minilm/$f" "$assets/minilm-tokenizer/"; done
  node -e "import('./dist/src/submission/prompts-csv.js').then(async (m) => console.log((await m.readPromptsCsv(process.argv[1])).map((r) => r.prompt).join('\n')))" \
    "$a/eval/kaggle-sample/prompts.csv" >"$assets/kaggle-prompts.txt"
  chmod -R u+w "$assets" # ../shared is read-only; a copy that stays so cannot be deleted by a non-root user
  cp "$(readlink -f "$(command -v node)")" "$stage/nodebin/node"

  rm -rf "$dir"; mkdir -p "$dir"
  # xz -6 rather than -9: on a 2-core machine -9 takes over 20 minutes and saves a few MB at most.
  tar -C "$stage" -cf - app nodebin | xz -6 -T2 | split -b 56m -d - "$dir/part"
  (cd "$dir" && sha256sum part* >SHA256SUMS)
  ls -l "$dir"
  parts=("$dir"/part*)
  echo
  echo "Device tool calls, back to back:"
  for ((i = 0; i < ${#parts[@]}; i++)); do
    p=$(basename "${parts[$i]}")
    if ((i < ${#parts[@]} - 1)); then
      echo "  run(command=\"bash scripts/device-check.sh stash $dir\", carry=[\"$dir/$p\", \"$dir/SHA256SUMS\"], timeout_s=120)"
    else
      echo "  run(command=\"bash scripts/device-check.sh run $dir\", carry=[\"$dir/$p\", \"$dir/SHA256SUMS\"], timeout_s=540)"
    fi
  done
  ;;
stash)
  stash "${2:-.device-check}"
  ;;
run)
  stash "${2:-.device-check}"
  out=${OUT:?OUT must name the folder results go to}
  (cd "$parts_tmp" && sha256sum -c --quiet SHA256SUMS) || { echo "parts missing or damaged in $parts_tmp: run the stash calls first, back to back" >&2; exit 3; }
  rm -rf /tmp/img2prompt-gpu && mkdir -p /tmp/img2prompt-gpu
  cat "$parts_tmp"/part* | xz -d -T0 | tar -C /tmp/img2prompt-gpu -xf -
  export PATH=/tmp/img2prompt-gpu/nodebin:$PATH
  cd /tmp/img2prompt-gpu/app
  env_txt="$out/environment.txt"
  { echo "== nvidia-smi"; nvidia-smi || true; } >"$env_txt" 2>&1
  { echo "== gpu install --check, LD_LIBRARY_PATH='${LD_LIBRARY_PATH:-}'"; node dist/src/cli/bin.cjs gpu install --check || true; } >>"$env_txt" 2>&1
  # Add the folders the check names for libraries it found off the loader's path, as its remedy says.
  add=$(node dist/src/cli/bin.cjs gpu install --check --json 2>/dev/null | node -e "
    let s = ''; process.stdin.on('data', (d) => (s += d)).on('end', () => {
      const r = JSON.parse(s); console.log([...new Set(r.libraries.filter((l) => l.status === 'off-path').map((l) => require('path').dirname(l.path)))].join(':'));
    });" || true)
  # Then the folders the gpu-bundle README saw the libraries in, should the check have missed one.
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
    [ -d "$d" ] && add="${add:+$add:}$d"
  done
  export LD_LIBRARY_PATH="${add}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  { echo "== gpu install --check, LD_LIBRARY_PATH='$LD_LIBRARY_PATH'"; node dist/src/cli/bin.cjs gpu install --check || true;
    echo "== info"; node dist/src/cli/bin.cjs info || true; } >>"$env_txt" 2>&1
  cat "$env_txt"
  set +e
  # libuv's pool sized as the CLI sizes it (src/cli/threadpool.cts), for the files-vs-decode bench.
  export UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE:-$(($(nproc) + 4))}
  timeout 420 node device/gpu-check.mjs device-assets "$out" --budget-s 330 "${@:3}" 2>&1 | tee "$out/gpu-check.log"
  rc=${PIPESTATUS[0]}
  echo "gpu-check exit code $rc"
  exit "$rc"
  ;;
*)
  echo "usage: $0 build [DIR] | stash [DIR] | run [DIR]" >&2
  exit 2
  ;;
esac
