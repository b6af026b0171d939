"""The kernel half of the sandbox: limit this process, then exec Node in its place.

Run as a script, never imported by the gateway: ``python -I -S jail.py [options] -- node ...``.
spawn.py starts it instead of using ``preexec_fn`` because the gateway is a threaded asyncio
server and CPython documents ``preexec_fn`` as unsafe in the presence of threads; a fresh
interpreter (``-I -S``: no site, no user paths, ~20 ms) is. Standard library only.

Everything here is inherited by Node across ``execve`` and cannot be undone from inside:

- **Landlock** (Linux >= 5.13; a kernel LSM any unprivileged process may use on itself): the
  file system is closed except read access to the paths given with ``--read`` (Node's binary
  and its libraries, the Pyodide folder, the runner script), execute on ``--exec`` (Node's
  binary only), and read/write beneath ``--rw`` (the scratch folder). On ABI >= 4, TCP bind and
  connect are refused; on ABI >= 6, signals to processes outside the sandbox and abstract
  unix sockets are refused. This is the file system boundary: Node's own
  ``--experimental-permission`` is a second layer, and Node's documentation says it offers no
  guarantee against malicious code (measured: under it alone, ``fs.readdirSync("/")`` lists
  the host's root; Landlock refuses it).
- **seccomp** (a BPF filter, after ``PR_SET_NO_NEW_PRIVS``): ``socket()`` fails with EACCES,
  for every address family, so no TCP/UDP/unix/netlink socket can be opened, whatever JS or
  native code asks; ``io_uring_setup`` fails with ENOSYS (io_uring operations, IORING_OP_SOCKET
  among them, would not pass through the filter; libuv falls back to its thread pool);
  ``ptrace`` and ``process_vm_readv/writev`` fail with EPERM. Syscalls of another ABI (x32,
  or i386 through ``int 0x80``) kill the process (SIGSYS), since their numbers differ.
  tests/gateway/test_sandbox.py::test_jail_rules_hold_for_native_code checks each of these on
  a native program under this jail, since no JS API reaches raw syscalls.
- **rlimits**: RLIMIT_CPU (a CPU-seconds backstop behind the parent's wall-clock kill),
  RLIMIT_DATA (the memory cap: see below), RLIMIT_FSIZE (the largest file the code may write),
  RLIMIT_CORE 0, RLIMIT_NOFILE.
- ``PR_SET_PDEATHSIG`` SIGKILL: if the gateway dies, the sandbox dies with it.
- An empty environment: the gateway's variables (API keys) never reach Node.

Memory: RLIMIT_AS does not work. V8 reserves address space far beyond what it uses (its
pointer cage, and about 10 GiB of guard region per 32-bit Wasm memory): measured here,
``node`` loading Pyodide dies at RLIMIT_AS of 20 GiB and starts only at 32 GiB, which is no
cap at all. RLIMIT_DATA (Linux >= 4.7) counts only private writable mappings, which V8's
PROT_NONE reservations are not until they are committed; under it a Wasm ``memory.grow`` or a
JS ArrayBuffer allocation fails cleanly (Python sees MemoryError, JS a RangeError), measured:
RLIMIT_DATA 1 GiB stopped a Python allocation loop at 800 MB with MemoryError.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import resource
import signal
import struct
import sys

# --- prctl / seccomp (linux/prctl.h, linux/seccomp.h, linux/filter.h, linux/audit.h) ---
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K
SECCOMP_DATA_NR = 0  # offsetof(struct seccomp_data, nr)
SECCOMP_DATA_ARCH = 4  # offsetof(struct seccomp_data, arch)
X32_SYSCALL_BIT = 0x40000000
EACCES, EPERM, ENOSYS = 13, 1, 38

# Per architecture: the audit arch, and the syscall numbers refused with their errno
# (arch/x86/entry/syscalls/syscall_64.tbl; include/uapi/asm-generic/unistd.h for aarch64).
ARCHES = {
    "x86_64": (0xC000003E, {41: EACCES, 425: ENOSYS, 101: EPERM, 310: EPERM, 311: EPERM}),
    "aarch64": (0xC00000B7, {198: EACCES, 425: ENOSYS, 117: EPERM, 270: EPERM, 271: EPERM}),
}

# --- Landlock (linux/landlock.h); syscall numbers are the same on every architecture ---
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6
# Rights that a rule on a file (not a folder) may carry.
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # EXECUTE .. MAKE_SYM: ABI 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def landlock_abi(libc: ctypes.CDLL) -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is missing or disabled."""
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(abi, 0)


def apply_landlock(libc: ctypes.CDLL, *, read: list[str], execute: list[str], rw: list[str]) -> int:
    """Close the file system (and TCP, signals where the ABI has them) except the given paths."""
    abi = landlock_abi(libc)
    if abi < 1:
        raise OSError("Landlock is not available on this kernel")
    handled_fs = _fs_rights(abi)
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("=QQQ", handled_fs, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("=Q", handled_fs)
    fd = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, len(attr), 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    read_rights = FS_READ_FILE | FS_READ_DIR
    rw_rights = handled_fs & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_IOCTL_DEV)
    grants = ([(p, read_rights) for p in read] + [(p, read_rights | FS_EXECUTE) for p in execute]
              + [(p, rw_rights) for p in rw])
    for path, rights in grants:
        target = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            if not os.path.isdir(path):
                rights &= FILE_RIGHTS
            rule = struct.pack("=Qi", rights & handled_fs, target)
            if libc.syscall(SYS_LANDLOCK_ADD_RULE, fd, LANDLOCK_RULE_PATH_BENEATH, rule, 0) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
        finally:
            os.close(target)
    if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(fd)
    return abi


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def apply_seccomp(libc: ctypes.CDLL) -> None:
    """Refuse socket(), io_uring and cross-process memory access; kill on a foreign ABI."""
    machine = platform.machine()
    if machine not in ARCHES:
        raise OSError(f"no seccomp filter for architecture {machine}")
    audit_arch, denied = ARCHES[machine]
    prog = [
        (BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        (BPF_JEQ_K, 1, 0, audit_arch),
        (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        (BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
    ]
    if machine == "x86_64":
        prog += [(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT), (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)]
    for nr, errno in denied.items():
        prog += [(BPF_JEQ_K, 0, 1, nr), (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno)]
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="jail.py")
    parser.add_argument("--cpu-s", type=int, required=True)
    parser.add_argument("--data-bytes", type=int, required=True)
    parser.add_argument("--fsize-bytes", type=int, required=True)
    parser.add_argument("--nofile", type=int, required=True)
    parser.add_argument("--read", action="append", default=[])
    parser.add_argument("--exec", dest="execute", action="append", default=[])
    parser.add_argument("--rw", action="append", default=[])
    parser.add_argument("--no-landlock", action="store_true",
                        help="tests only: show what the other layers refuse without Landlock")
    parser.add_argument("--no-seccomp", action="store_true",
                        help="tests only: show that the probe does reach the network without it")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1:  # the parent died before the line above: do not run orphaned
            sys.exit(70)
        # CPU: SIGXCPU at the soft limit names the cause (the parent reports it); the hard
        # limit, a second later, is SIGKILL for a process that ignored it.
        resource.setrlimit(resource.RLIMIT_CPU, (args.cpu_s, args.cpu_s + 1))
        for limit, value in ((resource.RLIMIT_DATA, args.data_bytes),
                             (resource.RLIMIT_FSIZE, args.fsize_bytes),
                             (resource.RLIMIT_NOFILE, args.nofile),
                             (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(limit, (value, value))
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if not args.no_landlock:
            apply_landlock(libc, read=args.read, execute=args.execute, rw=args.rw)
        if not args.no_seccomp:
            apply_seccomp(libc)
    except OSError as exc:
        # The parent reads this line as the reason the sandbox could not start.
        print(f"jail: {exc}", file=sys.stderr, flush=True)
        sys.exit(71)
    os.execve(command[0], command, {})


if __name__ == "__main__":
    main(sys.argv[1:])
