"""Run a bundle on an emulated 64-bit Raspberry Pi: aarch64 Python 3.11 under qemu-user.

No Pi here, so this builds the closest thing: Debian Bookworm's arm64 python3.11 (the Python of
64-bit Raspberry Pi OS) unpacked into a folder, the aarch64 wheels pinned in the bundle, and
qemu-aarch64-static running the two as a Pi 4 (Cortex-A72), Pi 5 (Cortex-A76) or Pi 3 (A53):

- qemu emulates the board's own CPU (`-cpu cortex-a72`), so the CPU features LiteRT picks its
  kernels by are a Pi's. (With qemu's default CPU, which has SVE, LiteRT's int8 answers are wrong.)
- LiteRT reads /proc/cpuinfo too; under qemu-user that is the x86 host's file and LiteRT
  crashes on it. Each command runs in a private mount namespace (`unshare -m`) with the
  board's cpuinfo (Pi 4: 4x Cortex-A72, CPU part 0xd08) bind-mounted over /proc/cpuinfo.
- qemu-user cannot start a second aarch64 program (no binfmt_misc here), so install.sh's steps
  are replayed one by one: `python3 -m venv --without-pip` (ensurepip would start a child
  Python), then pip 23.0.1 (the pip of Bookworm's venvs) run from its wheel.

The root, the wheels and pip are cached under ~/.cache/mnist-edge/rpi ($MNIST_EDGE_CACHE).
The first run downloads about 96 MB (arm64 package lists, 33 Debian packages, the wheels);
later runs are offline.

    python -m mnist_edge.export.rpi.emulate prepare dist/mnist-edge-rpi.tar.gz
    python -m mnist_edge.export.rpi.emulate install dist/mnist-edge-rpi.tar.gz /tmp/pi
    python -m mnist_edge.export.rpi.emulate run /tmp/pi -- mnist-edge predict --json digit.png
    python -m mnist_edge.export.rpi.emulate run /tmp/pi pi5 -- mnist-edge live --source video.mp4
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("MNIST_EDGE_CACHE", Path.home() / ".cache" / "mnist-edge")) / "rpi"
# Bookworm's arm64 python3.11 and the shared libraries it and the wheels load (the manylinux
# wheels bring their other libraries along). Not the full apt closure: no dpkg, perl or tar.
DEBIAN_PACKAGES = (
    "python3.11-minimal libpython3.11-minimal libpython3.11-stdlib media-types "
    "libc6 libgcc-s1 gcc-12-base libstdc++6 libgomp1 libssl3 libffi8 zlib1g libexpat1 libbz2-1.0 "
    "liblzma5 libzstd1 libsqlite3-0 libcrypt1 libdb5.3 libncursesw6 libtinfo6 libreadline8 "
    "readline-common libuuid1 libnsl2 libtirpc3 libtirpc-common libgssapi-krb5-2 libkrb5-3 "
    "libkrb5support0 libk5crypto3 libcom-err2 libkeyutils1"
).split()
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64")
PI_PIP = "pip==23.0.1"  # what `python3 -m venv` puts into a venv on Raspberry Pi OS Bookworm


@dataclass(frozen=True)
class Board:
    """A Raspberry Pi as qemu-user shows it: the CPU model qemu emulates (which sets the feature
    bits LiteRT's kernels are chosen by) and the /proc/cpuinfo text of the real board."""

    qemu_cpu: str
    part: str
    variant: str
    revision: int
    features: str
    model: str
    code: str
    bogomips: str = "108.00"

    def cpuinfo(self) -> str:
        core = (
            "processor\t: {n}\nBogoMIPS\t: {b}\nFeatures\t: {f}\nCPU implementer\t: 0x41\n"
            "CPU architecture: 8\nCPU variant\t: {v}\nCPU part\t: {p}\nCPU revision\t: {r}\n"
        )
        cores = [
            core.format(
                n=n, b=self.bogomips, f=self.features, v=self.variant, p=self.part, r=self.revision
            )
            for n in range(4)
        ]
        board = f"Revision\t: {self.code}\nSerial\t\t: 10000000a1b2c3d4\nModel\t\t: {self.model}\n"
        return "\n".join([*cores, board])


# Under qemu 7.2's default "max" CPU (SVE, SVE2, i8mm...) LiteRT's int8 answers are wrong (every
# digit a 5; right again with sve=off), so qemu always emulates the board's own CPU: no SVE.
BOARDS = {
    "pi3": Board(
        "cortex-a53", "0xd03", "0x0", 4, "fp asimd evtstrm crc32 cpuid",
        "Raspberry Pi 3 Model B Rev 1.2", "a02082", "38.40",
    ),
    "pi4": Board(
        "cortex-a72", "0xd08", "0x0", 3, "fp asimd evtstrm crc32 cpuid",
        "Raspberry Pi 4 Model B Rev 1.1", "c03111",
    ),
    "pi5": Board(
        "cortex-a76", "0xd0b", "0x4", 1,
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
        "dcpop asimddp",
        "Raspberry Pi 5 Model B Rev 1.0", "d04170",
    ),
}  # fmt: skip


class Unavailable(RuntimeError):
    """Emulation cannot run on this machine; the message says what is missing."""


def find_tools() -> str:
    """The qemu-aarch64-static path, after checking the other tools this needs."""
    if sys.platform != "linux":
        raise Unavailable(f"needs Linux (qemu-user, unshare), not {sys.platform}")
    if os.geteuid() != 0:
        raise Unavailable("needs root: unshare -m and mount --bind over /proc/cpuinfo")
    for tool in ("qemu-aarch64-static", "unshare", "mount", "dpkg", "apt-get"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} not found (apt-get install -y qemu-user-static)")
    return shutil.which("qemu-aarch64-static")


def run_quiet(command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a preparation step; on failure raise Unavailable with its last error line."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise Unavailable(f"{what} failed: {lines[-1] if lines else done.returncode}")
    return done


def apt_options(cache: Path) -> list[str]:
    """apt with its own lists and archive cache and arm64 as the only architecture: the host's
    dpkg configuration stays as it is (no dpkg --add-architecture)."""
    lists, archives = cache / "apt" / "lists", cache / "apt" / "cache"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    (archives / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    return [
        "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={archives}",
        "-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64",
        "-o", "Debug::NoLocking=1", "-q",
    ]  # fmt: skip


def prepare_root(cache: Path = CACHE_DIR) -> Path:
    """An aarch64 Debian Bookworm root with python3.11 (cached: built once, then reused)."""
    root = cache / "root"
    stamp = root / ".mnist-edge-packages"
    if stamp.is_file() and stamp.read_text() == " ".join(DEBIAN_PACKAGES):
        return root
    options = apt_options(cache)
    run_quiet(["apt-get", *options, "update"], "apt-get update (arm64 lists)")
    debs = cache / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    run_quiet(["apt-get", *options, "download", *DEBIAN_PACKAGES], "apt-get download", cwd=debs)
    building = Path(tempfile.mkdtemp(prefix="root-", dir=cache))
    for deb in sorted(debs.glob("*.deb")):
        run_quiet(["dpkg", "-x", str(deb), str(building)], f"dpkg -x {deb.name}")
    (building / stamp.name).write_text(" ".join(DEBIAN_PACKAGES))
    shutil.rmtree(root, ignore_errors=True)
    building.rename(root)
    shutil.rmtree(debs)  # unpacked; the apt lists stay for the next rebuild
    return root


def requirement_lines(*files: Path) -> list[str]:
    lines = [line.strip() for f in files for line in f.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def download_wheels(requirements: list[str], cache: Path = CACHE_DIR, aarch64: bool = True) -> Path:
    """The wheels of `requirements` and pip's own, in one cached folder: aarch64 cp311 ones for
    the emulated Pi, or (aarch64=False) this machine's and Python's, to run install.sh here."""
    wheels = cache / ("wheels" if aarch64 else f"wheels-{platform.machine()}")
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:"]
    if aarch64:
        command += [arg for tag in WHEEL_PLATFORMS for arg in ("--platform", tag)]
        command += ["--python-version", "3.11"]
    command += ["--dest", str(wheels), *requirements, PI_PIP]
    offline = [*command, "--no-index", "--find-links", str(wheels)]
    if subprocess.run(offline, capture_output=True).returncode != 0:
        run_quiet(command, "pip download of the wheels")
    return wheels


@contextlib.contextmanager
def cache_lock(cache: Path = CACHE_DIR) -> Iterator[None]:
    """One preparation at a time: a second test run waits instead of replacing the root that
    the first one is running on."""
    import fcntl  # POSIX only, like the rest of this module; imported here so tests collect

    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare(bundle_dir: Path, cache: Path = CACHE_DIR) -> tuple[Path, Path]:
    """(root, wheels) for the requirements files in an unpacked bundle."""
    find_tools()
    files = sorted(bundle_dir.glob("requirements-*.txt"))
    with cache_lock(cache):
        return prepare_root(cache), download_wheels(requirement_lines(*files), cache)


def emulated(argv: list[str], root: Path, board: str = "pi4") -> list[str]:
    """The host command line that runs the aarch64 program argv[0] as if on `board`."""
    qemu, spec = find_tools(), BOARDS[board]
    cpuinfo = root / "etc" / "mnist-edge" / f"cpuinfo-{board}"
    if not cpuinfo.is_file() or cpuinfo.read_text() != spec.cpuinfo():
        cpuinfo.parent.mkdir(parents=True, exist_ok=True)
        cpuinfo.write_text(spec.cpuinfo())
    script = 'mount --bind "$0" /proc/cpuinfo && exec "$@"'
    qemu_args = [qemu, "-cpu", spec.qemu_cpu, "-L", str(root)]
    return ["unshare", "-m", "--", "sh", "-c", script, str(cpuinfo), *qemu_args, *argv]


def pi_environment(venv: Path) -> dict[str, str]:
    """A plain login environment: nothing of the host's Python leaks into the emulated one."""
    keep = ("HOME", "LANG", "TERM", "TMPDIR")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["PATH"] = f"{venv}/bin:/usr/local/bin:/usr/bin:/bin"
    env.setdefault("LANG", "C.UTF-8")
    return env


def run(
    venv: Path, argv: list[str], root: Path, board: str = "pi4", **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run `mnist-edge ...` (or any console script or python argument list) from the venv."""
    # A console script's "#!" line cannot start the aarch64 python here: qemu runs the python.
    rest = argv[1:] if argv[0] == "python" else [str(venv / "bin" / argv[0]), *argv[1:]]
    command = emulated([str(venv / "bin" / "python"), *rest], root, board)
    kwargs.setdefault("env", pi_environment(venv))
    kwargs.setdefault("capture_output", True)
    return subprocess.run(command, text=True, **kwargs)


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack the bundle archive into dest; returns its mnist-edge-rpi folder."""
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest / "mnist-edge-rpi"


def install(bundle_dir: Path, venv: Path, root: Path, wheels: Path, picamera2: bool = False):
    """install.sh's steps under qemu, with pip reading the cached wheels instead of PyPI.

    Returns {step: seconds}. Raises RuntimeError with pip's last line if a step fails."""
    pip_wheel = next(wheels.glob("pip-23.0.1-*.whl"))
    python = str(venv / "bin" / "python")
    pip = [python, str(pip_wheel / "pip"), "install", "--no-index", "--find-links", str(wheels)]
    pip += ["--disable-pip-version-check", "--no-cache-dir", "--quiet"]
    requirements = [bundle_dir / "requirements-rpi.txt"]
    if picamera2:
        requirements.append(bundle_dir / "requirements-picamera2.txt")
    site = ["--system-site-packages"] if picamera2 else []
    steps = {"python3 -m venv": [str(root / "usr/bin/python3.11"), "-m", "venv", "--without-pip"]}
    steps["python3 -m venv"] += [*site, str(venv)]
    for file in requirements:
        steps[f"pip install -r {file.name}"] = [*pip, "--requirement", str(file)]
    wheel = next(bundle_dir.glob("mnist_edge-*.whl"))
    steps["pip install --no-deps mnist-edge"] = [*pip, "--no-deps", "--force-reinstall", str(wheel)]
    seconds = {}
    for step, argv in steps.items():
        start = time.perf_counter()
        done = subprocess.run(
            emulated(argv, root), capture_output=True, text=True, env=pi_environment(venv)
        )
        seconds[step] = time.perf_counter() - start
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()] or ["?"]
            raise RuntimeError(f"{step} failed under emulation: {lines[-1]}")
    return seconds


def main(args: list[str]) -> int:
    usage = __doc__.split("\n\n")[-1]
    if len(args) >= 2 and args[0] in ("prepare", "install"):
        folder = Path(tempfile.mkdtemp(prefix="mnist-edge-rpi-"))
        bundle_dir = unpack(Path(args[1]), folder)
        root, wheels = prepare(bundle_dir)
        print(f"bundle: {bundle_dir}\nroot: {root}\nwheels: {wheels}")
        if args[0] == "install" and len(args) == 3:
            for step, seconds in install(bundle_dir, Path(args[2]), root, wheels).items():
                print(f"{step}: {seconds:.1f} s")
        return 0
    if len(args) >= 3 and args[0] == "run" and "--" in args[2:4]:
        board = args[2] if args[2] in BOARDS else "pi4"
        command = args[args.index("--") + 1 :]
        done = run(Path(args[1]), command, prepare_root(), board, capture_output=False)
        return done.returncode
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
