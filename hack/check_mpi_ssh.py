"""Run the rendered multi-node SSH set-up for real: the workers' sshd command (render/mpissh.py) as a
non-root user, and the leader's ssh with the rendered ssh_config, both on files laid out as the kubelet
mounts the operator's Secret (root-owned, mode 0400 plus group read for the pod's fsGroup).

    python hack/check_mpi_ssh.py [--sshd /path/to/sshd] [--uid 1000 --gid 1000]

Without --sshd, Debian's openssh-server (and libwrap0, which its sshd links) are fetched once with
``apt-get download`` into ~/.cache/trtllm-operator/openssh and unpacked there (nothing installed).
Must run as root (to own the files as the kubelet does and drop to --uid). Exits non-zero when the
leader's ssh can't run a command on the worker. Paths and the port are the only things rewritten.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from trtllm_operator.handlers.mpissh import _key_pair
from trtllm_operator.render import mpissh

CACHE = os.path.expanduser("~/.cache/trtllm-operator/openssh")


def fetch_sshd() -> str:
    """Debian's sshd, unpacked under CACHE (downloaded once); its path."""
    root = os.path.join(CACHE, "root")
    sshd = os.path.join(root, "usr/sbin/sshd")
    if not os.path.exists(sshd):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run(["apt-get", "download", "openssh-server", "libwrap0"], cwd=CACHE, check=True)
        for deb in glob.glob(os.path.join(CACHE, "*.deb")):
            subprocess.run(["dpkg", "-x", deb, root], check=True)
    return sshd


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sshd", help="an sshd binary (default: Debian's, fetched into the cache)")
    parser.add_argument("--uid", type=int, default=1000)
    parser.add_argument("--gid", type=int, default=1000)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = tempfile.mkdtemp(prefix="mpi-ssh-")
    os.chmod(base, 0o755)  # noqa: S103 (the dropped-to user walks into it)
    mount = os.path.join(base, "etc-trtllm-mpi-ssh")
    os.mkdir(mount, 0o755)
    # The dropped-to user can't read root's cache: sshd and the libraries beside it go into base.
    source = args.sshd or fetch_sshd()
    sshd_bin = shutil.copy(source, os.path.join(base, "sshd"))
    for lib in glob.glob(os.path.join(os.path.dirname(source), "../lib/*/libwrap.so*")):
        shutil.copy(lib, base)
    env = {**os.environ, "LD_LIBRARY_PATH": base}

    def rewrite(text: str) -> str:
        return text.replace(mpissh.MOUNT_PATH, mount).replace(str(mpissh.MPI_SSH_PORT), str(port))

    client_private, client_public = _key_pair()
    host_private, host_public = _key_pair()
    data = mpissh.secret_data(client_private, client_public, host_private, host_public)
    for key, text in data.items():
        path = os.path.join(mount, key)
        with open(path, "w") as f:
            f.write(rewrite(text))
        os.chown(path, 0, args.gid)
        os.chmod(path, mpissh.MODE | 0o040)  # defaultMode 0400, group-readable for fsGroup
    sshd = [rewrite(a) for a in mpissh.sshd_command()]
    sshd[0] = sshd_bin
    drop = ["setpriv", f"--reuid={args.uid}", f"--regid={args.gid}", "--clear-groups"]
    print("sshd:", " ".join(sshd), flush=True)
    server = subprocess.Popen([*drop, *sshd], stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1.0)
        if server.poll() is not None:
            print("sshd exited:", server.stderr.read() if server.stderr else "", file=sys.stderr)
            return 1
        client = [
            "ssh",
            *rewrite(mpissh.rsh_args()).split(),
            "worker-0.example",  # any name: known_hosts pins the key for every host ('*')
            "-o",
            "HostName=127.0.0.1",
            "echo",
            "rank-host-ok",
        ]
        print("ssh:", " ".join(client), flush=True)
        result = subprocess.run(
            [*drop, "env", "HOME=/tmp", *client], capture_output=True, text=True, timeout=30
        )
        print(result.stdout, result.stderr, flush=True)
        return 0 if result.returncode == 0 and "rank-host-ok" in result.stdout else 1
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
        print("sshd log:", err[-2000:])
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
