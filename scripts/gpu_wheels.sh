#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with everything the GPU machine needs to install grok without a package registry:
#   .whl/*.whl        Python 3.12 manylinux x86-64 wheels of every dependency the device image lacks, plus grok's own
#   .whl/py311/*.whl  the same list for this machine's Python 3.11 (the CPU rehearsal of scripts/gpu_check.sh)
# antlr4-python3-runtime 4.9.3 is published only as a source archive: it is built into a (pure Python) wheel here.
#
#   bash scripts/gpu_wheels.sh          # needs the package registry; then run scripts/gpu_check.sh on the device
#
# IMAGE_HAS is what the device image already has; MISSING is what it lacks. Every dependency in pyproject.toml
# is in one of the two lists (tests/integration/test_gpu_wheels.py checks it); version ranges come from
# pyproject.toml itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
IMAGE_HAS=(torch numpy tqdm matplotlib pytest pyyaml regex)
MISSING=(hydra-core omegaconf antlr4-python3-runtime hydra-submitit-launcher submitit nltk wandb)
ANTLR=antlr4-python3-runtime==4.9.3  # hydra-core 1.3 / omegaconf 2.3 pin antlr4 4.9.*
PLATFORMS=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 manylinux_2_28_x86_64)

# the requirement of each MISSING package as pyproject.toml states it (the bare name where it is only indirect)
mapfile -t SPECS < <("$PY" - "${MISSING[@]}" <<'PY'
import re, sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
by_name = {re.split(r"[ <>=!~;\[]", d, maxsplit=1)[0].lower(): d for d in deps}
for name in sys.argv[1:]:
    print(by_name.get(name.lower(), name))
PY
)
SPECS=("${SPECS[@]/#antlr4-python3-runtime/$ANTLR}")

rm -rf .whl
mkdir -p .whl/py311 .whl/built
echo "== building $ANTLR (source only) and grok's own wheel"
"$PY" -m pip wheel -q --no-deps --no-binary antlr4-python3-runtime -w .whl/built "$ANTLR"
"$PY" -m pip wheel -q --no-deps -w .whl/built .
rm -rf build

fetch() {  # fetch PYTHON_VERSION DEST: MISSING and their dependencies as wheels for that Python
    local args=(--python-version "$1" --implementation cp --only-binary=:all: --find-links .whl/built --dest "$2")
    for platform in "${PLATFORMS[@]}"; do args+=(--platform "$platform"); done
    echo "== Python $1 wheels into $2"
    "$PY" -m pip download -q "${args[@]}" "${SPECS[@]}"
    cp .whl/built/*.whl "$2"/
    local name
    for name in "${IMAGE_HAS[@]}"; do  # the image's own copies stay in charge
        find "$2" -maxdepth 1 -iname "${name//-/_}-*.whl" -delete
    done
}
fetch 3.12 .whl
fetch 3.11 .whl/py311
rm -rf .whl/built
echo "== .whl: $(find .whl -maxdepth 1 -type f -name '*.whl' | wc -l) wheels for Python 3.12, .whl/py311:" \
     "$(find .whl/py311 -type f -name '*.whl' | wc -l) for Python 3.11"
ls .whl/*.whl | xargs -n1 basename
