#!/bin/sh
# Install mnist-edge from this bundle into a Python virtual environment (venv + pip, nothing else).
#
#   ./install.sh               venv in ./venv: USB webcam (--source 0), video files, images
#   ./install.sh --picamera2   the venv also sees apt's python3-picamera2 (the CSI camera);
#                              first: sudo apt install -y python3-picamera2
#   ./install.sh --venv DIR    put the venv in DIR instead
set -eu

here=$(cd "$(dirname "$0")" && pwd)
venv="$here/venv"
picamera2=no

while [ $# -gt 0 ]; do
    case "$1" in
        --picamera2) picamera2=yes ;;
        --venv)
            [ $# -ge 2 ] || { echo "install.sh: --venv needs a directory" >&2; exit 2; }
            venv=$2
            shift ;;
        -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option '$1' (see ./install.sh --help)" >&2; exit 2 ;;
    esac
    shift
done

# A 32-bit Raspberry Pi OS reports aarch64 from uname on a 64-bit kernel, so ask Python itself.
python3 -c 'import struct, sys; sys.exit(struct.calcsize("P") != 8)' || {
    echo "install.sh: this Python is 32-bit; LiteRT has no 32-bit ARM wheels: use 64-bit Raspberry Pi OS" >&2
    exit 1
}
python3 -c 'import ensurepip' 2>/dev/null || {
    echo "install.sh: python3-venv is missing: sudo apt install -y python3-venv" >&2
    exit 1
}
site=""
if [ "$picamera2" = yes ]; then
    python3 -c 'import picamera2' 2>/dev/null || {
        echo "install.sh: python3-picamera2 is missing: sudo apt install -y python3-picamera2" >&2
        exit 1
    }
    site="--system-site-packages"
fi

echo "== venv: $venv"
python3 -m venv $site "$venv"
echo "== runtime dependencies (pinned, aarch64 wheels)"
"$venv/bin/python" -m pip install --requirement "$here/requirements-rpi.txt"
if [ "$picamera2" = yes ]; then
    "$venv/bin/python" -m pip install --requirement "$here/requirements-picamera2.txt"
fi
# --no-deps: the wheel's metadata names the desktop opencv-python, whose cv2 the headless build
# installed above already provides (both at once would overwrite each other's files).
# --force-reinstall: a newer bundle of the same version still replaces the old code.
echo "== mnist-edge"
"$venv/bin/python" -m pip install --no-deps --force-reinstall "$here"/mnist_edge-*.whl
"$venv/bin/mnist-edge" --version
echo "Done. Try: $venv/bin/mnist-edge live --headless --json --source 0 --model $here/models/@MODEL@"
